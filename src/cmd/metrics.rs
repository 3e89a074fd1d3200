//! `rappel metrics [--textfile DIR]`: the Prometheus metrics now, printed, or
//! written atomically to `DIR/rappel.prom` for node_exporter's textfile
//! collector (`crate::metrics`).

use crate::cli::MetricsArgs;
use crate::exit::Exit;
use crate::runner::Ctx;

pub fn run(ctx: &Ctx<'_>, args: &MetricsArgs) -> anyhow::Result<Exit> {
    let conn = ctx.config.db(true).connect_current()?;
    let text = crate::metrics::render(&conn, ctx.clock.now())?;
    match args.textfile.as_ref().or(ctx.config.textfile_dir.as_ref()) {
        Some(dir) => {
            let path = crate::metrics::write_textfile(dir, &text)
                .map_err(|e| crate::exit::fail(Exit::IoErr, format!("{e:#}")))?;
            log::info!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}
