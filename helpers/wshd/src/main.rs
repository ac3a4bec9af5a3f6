fn main() {
    eprintln!("wshd: not built yet");
    std::process::exit(1);
}
