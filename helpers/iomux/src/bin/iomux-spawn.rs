//! iomux-spawn: see `iomux::spawn` for the command line and behaviour.

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
