//! The composition root: parses the command line, loads the configuration
//! once, builds the clock and the context every command shares (templates
//! and channels are built in it once, when first needed), and dispatches.

use crate::cli::{Cli, Command, ConfigCommand, DbCommand};
use crate::clock::Clock;
use crate::cmd;
use crate::config;
use crate::domain::Run;
use crate::exit::{Exit, OrExit};
use crate::output::{self, Verbosity};
use crate::runner::{self, Ctx};

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    output::init(verbosity);
    let clock = Clock::new(cli.now);
    match &cli.command {
        Command::Init { dir, database } => return cmd::init::run(dir, database.as_deref()),
        Command::Demo {
            dir,
            scale,
            no_run,
            database,
        } => {
            let demo = cmd::demo::Demo {
                dir,
                scale: *scale,
                no_run: *no_run,
                database: database.as_deref(),
            };
            return cmd::demo::run(&demo, clock, verbosity, cli.json);
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "rappel", &mut script);
            output::write_stdout(&script).or_exit(Exit::IoErr)?;
            return Ok(Exit::Ok);
        }
        Command::Man => {
            let page = man_page().or_exit(Exit::Software)?;
            output::write_stdout(&page).or_exit(Exit::IoErr)?;
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    let config = config::load(cli.config.as_deref())?;
    output::set_json_logs(config.json_logs);
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let ctx = Ctx::new(&config, clock, verbosity, cli.json);
    match cli.command {
        Command::CheckDelayAlerts(args) => runner::delay_alerts(&ctx, args.mode()),
        Command::SendReports(args) => runner::reports(&ctx, args.mode()),
        Command::SendReminders { job, kinds } => runner::reminders(&ctx, job.mode(), &kinds),
        Command::SyncAttendance { job, service } => runner::attendance::run(&ctx, job.mode(), service.as_deref()),
        Command::RunAll(args) => runner::run_all(&ctx, args.mode()),
        Command::Purge(args) => cmd::purge::run(&ctx, &args),
        Command::Deliver(args) => runner::run_job(&ctx, Run::Deliver, args.mode(), None),
        Command::Retry(args) => cmd::hand::retry(&ctx, &args),
        Command::Cancel(args) => cmd::hand::cancel(&ctx, &args),
        Command::Show { id } => cmd::show::run(&ctx, id),
        Command::Upcoming { within } => cmd::upcoming::run(&ctx, within),
        Command::Db(DbCommand::Migrate) => cmd::db::migrate(&ctx),
        Command::Db(DbCommand::Status) => cmd::db::status(&ctx),
        Command::Sources { table, rows } => cmd::sources::run(&ctx, table.as_deref(), rows),
        Command::Config(ConfigCommand::Check { connect }) => cmd::check::run(&ctx, connect),
        Command::TestEmail { to } => cmd::test_email::run(&ctx, &to),
        Command::Log(args) => cmd::log::run(&ctx, &args),
        Command::Stats(args) => cmd::stats::run(&ctx, &args),
        Command::Dashboard(args) => cmd::dashboard::run(&ctx, &args),
        Command::Metrics(args) => cmd::metrics::run(&ctx, &args),
        Command::Init { .. } | Command::Demo { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
    }
}

/// The man page, rappel(1): one page. Its commands are listed with what
/// each does and `rappel <command> --help`, not as rappel-<command>(1) pages
/// that no package installs.
fn man_page() -> std::io::Result<Vec<u8>> {
    use clap_mangen::roff::{Roff, bold, roman};
    let command = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands.control("TP", []);
        commands.text([bold(format!("rappel {}", sub.get_name()))]);
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        commands.text([roman(format!(
            "{about}. Its options: rappel {} --help.",
            sub.get_name()
        ))]);
    }
    commands.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}
