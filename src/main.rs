//! The `tidelog` command line: parses the arguments and runs the command (`cli/`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if !cli.serves() {
        // Printing into a closed pipe (`tidelog query | head`) ends the program quietly, as usual for
        // command-line tools. Not for the server, where a client going away must not kill the process.
        // SAFETY: setting a signal disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
