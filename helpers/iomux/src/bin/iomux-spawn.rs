//! iomux-spawn: see `iomux::spawn` for the command line and behaviour.

fn main() {
    iomux::spawn::ensure_stdio();
    let cli = iomux::spawn::CLI;
    let cfg = cli.get(iomux::spawn::parse_args(&mut wsys::args::from_env(), |k| {
        std::env::var_os(k)
    }));
    // SAFETY: iomux-spawn never starts a thread, so it is single-threaded.
    #[allow(unsafe_code)]
    let started = unsafe { iomux::spawn::Spawner::start(cfg) };
    let spawner = match started {
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
