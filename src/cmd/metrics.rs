//! `rappel metrics [--textfile [DIR]]`: the Prometheus metrics now, printed,
//! or written whole to `DIR/rappel.prom` (by default `[monitoring]
//! textfile_dir`) for node_exporter's textfile collector (`crate::metrics`).

use crate::cli::MetricsArgs;
use crate::exit::Exit;
use crate::runner::Ctx;

pub fn run(ctx: &Ctx<'_>, args: &MetricsArgs) -> anyhow::Result<Exit> {
    let conn = ctx.config.db(true).connect_current()?;
    let text = crate::metrics::render(&conn, ctx.clock.now())?;
    let dir = match &args.textfile {
        None => None,
        Some(Some(dir)) => Some(dir),
        Some(None) => Some(ctx.config.textfile_dir.as_ref().ok_or_else(|| {
            crate::exit::fail(
                Exit::Usage,
                "--textfile without a folder writes into [monitoring] textfile_dir, which is not set",
            )
        })?),
    };
    match dir {
        Some(dir) => {
            let path = crate::metrics::write_textfile(dir, &text)
                .map_err(|e| crate::exit::fail(Exit::IoErr, format!("{e:#}")))?;
            log::info!("wrote {}", path.display());
        }
        None => crate::output::write_stdout(text.as_bytes())
            .map_err(|e| crate::exit::fail(Exit::IoErr, format!("cannot write to standard output: {e}")))?,
    }
    Ok(Exit::Ok)
}
