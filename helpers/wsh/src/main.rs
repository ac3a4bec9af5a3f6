fn main() {
    eprintln!("wsh: not built yet");
    std::process::exit(255);
}
