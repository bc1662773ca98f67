fn main() -> std::process::ExitCode {
    mensa::cli::main()
}
