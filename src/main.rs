//! rappel's entry point: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
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
    if matches!(cli.command, rappel::cli::Command::SendReminders { .. }) {
        purge_later();
    }
    match rappel::app::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            // Through the logger: masked, escaped, and in the log's format.
            log::error!("{err:#}");
            ExitCode::from(rappel::exit::of_error(&err).code())
        }
    }
}

/// mimalloc rather than the system's allocator: with glibc's, send-reminders'
/// planner and planning writer (`jobs/reminders/writer.rs`) queued on each
/// other's arena locks for every few messages, and planning 50,000 weekly
/// digests took 3.1 s instead of 2.6 s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Positions in mimalloc.h's `mi_option_e` (the same in its v2 and v3; the
// Rust bindings name neither).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For send-reminders: freed memory goes back to the system 10 ms later
/// rather than at once. Its planning threads free and take memory at a high
/// rate (50,000 weekly digests on Sunday evening: 2,700 `madvise` calls at
/// once); kept 10 ms, Sunday 20:00 plans in 1.87 s rather than 1.97 s for
/// 2.5 MB more at its peak (`bench/run.sh sessions`). The other commands
/// keep `tune_allocator`'s: the 1M-ticket scan's peak would grow by 9.6 MB.
fn purge_later() {
    // SAFETY: as in `tune_allocator`: `mi_option_set` only stores the value.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 10);
    }
}

/// Memory a run frees goes back to the system at once, and memory it
/// reserves is committed as it is used: mimalloc's defaults (a purge delay
/// of one second, arenas committed whole where the system overcommits)
/// raised the peak memory of a no-op run by 12 MB and of the 1M-ticket scan
/// by 45 MB. Set before anything else runs.
fn tune_allocator() {
    // SAFETY: `mi_option_set` only stores the option's value; mimalloc
    // documents it as callable at any time, and these two are read when
    // memory is next purged or reserved.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
}
