fn main() {
    std::process::exit(lthc::cli::main());
}
