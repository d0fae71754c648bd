//! The `tracecoder` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracecoder::cli::main(tracecoder::cli::Cli::parse())
}
