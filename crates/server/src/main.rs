//! The `tessera` binary: parses the command line and hands over to [`tessera_server::cli`].

fn main() -> std::process::ExitCode {
    tessera_server::cli::main()
}
