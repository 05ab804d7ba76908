//! The `tessera` binary: parses the command line and hands over to [`tessera_server::cli`].

/// mimalloc: per-thread free lists make the many small allocations of request handling
/// (JSON, SQL rows, headers) cheaper than glibc's malloc, and it returns freed memory to
/// the OS instead of keeping large blocks (Argon2's 19 MiB) resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera_server::cli::main()
}
