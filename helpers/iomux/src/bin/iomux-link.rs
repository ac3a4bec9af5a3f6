//! iomux-link: see `iomux::link` for the command line and exit codes.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match iomux::link::parse_args(&args) {
        Ok(cfg) => iomux::link::run(&cfg),
        Err(e) => {
            eprintln!("iomux-link: {e}");
            iomux::link::EXIT_INTERNAL
        }
    };
    std::process::exit(code);
}
