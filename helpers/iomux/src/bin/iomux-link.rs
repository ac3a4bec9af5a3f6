//! iomux-link: see `iomux::link` for the command line and exit codes.

fn main() {
    let cfg = iomux::link::CLI.get(iomux::link::parse_args(&mut wsys::args::from_env()));
    std::process::exit(iomux::link::run(&cfg));
}
