//! The `tracecoder` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc: rows are allocated on SQLite's worker threads and freed on the runtime's, which
/// glibc's per-thread arenas serve with lock contention and fragmentation (see
/// docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracecoder::cli::main(tracecoder::cli::Cli::parse())
}
