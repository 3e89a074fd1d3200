//! rappel's entry point: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    rappel::output::quiet_on_closed_stdout();
    let cli = match rappel::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match rappel::app::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            // Through the logger: masked, escaped, and in the log's format.
            log::error!("{err:#}");
            ExitCode::from(rappel::exit::of_error(&err).code())
        }
    }
}
