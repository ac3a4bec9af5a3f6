//! iomux-spawn: see `iomux::spawn` for the command line and behaviour.
#![forbid(unsafe_code)]

fn main() {
    iomux::spawn::ensure_stdio();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cfg = match iomux::spawn::parse_args(&args, |k| std::env::var_os(k)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iomux-spawn: {e}");
            std::process::exit(1);
        }
    };
    let spawner = match iomux::spawn::Spawner::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iomux-spawn: {e}");
            std::process::exit(1);
        }
    };
    // After `child active` stderr is /dev/null; the code says it all.
    if spawner.run().is_err() {
        std::process::exit(1);
    }
}
