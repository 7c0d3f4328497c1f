//! `tern flows`: read a bridge's flows over OpenFlow and print them exactly as
//! `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` does, so operators and tests read one language.

use crate::exit::Exit;
use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::io::Write;
use tern_controller::ofconn::{OfConn, Target};

#[derive(Args)]
pub struct FlowsArgs {
    #[command(subcommand)]
    command: FlowsCommand,
}

#[derive(Subcommand)]
enum FlowsCommand {
    /// Print the bridge's flows, one per line, in ovs-ofctl's text.
    Dump {
        /// The bridge's OpenFlow endpoint: unix:PATH (e.g. <rundir>/br-int.mgmt) or tcp:HOST:PORT.
        #[arg(long = "of", value_name = "TARGET")]
        target: String,
        /// Only this table.
        #[arg(long)]
        table: Option<u8>,
        /// Head each table's flows with the pipeline's name for it.
        #[arg(long)]
        names: bool,
    },
}

pub async fn run(args: FlowsArgs) -> Result<(), Exit> {
    match args.command {
        FlowsCommand::Dump { target, table, names } => {
            let target: Target = target.parse().map_err(Exit::bad_input)?;
            let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
            let conn = OfConn::connect(&target, events).await.map_err(Exit::failure)?;
            let flows = conn.dump_flows(table).await.map_err(|e| Exit::failure(anyhow!(e)))?;
            let mut out = std::io::stdout().lock();
            let mut last_table = None;
            for stats in &flows {
                let flow = &stats.flow;
                if names && last_table != Some(flow.table_id) {
                    let name = tern_pipeline::tables::name(flow.table_id).unwrap_or("(not a tern table)");
                    writeln!(out, "# table {}: {name}", flow.table_id).map_err(Exit::failure)?;
                    last_table = Some(flow.table_id);
                }
                writeln!(out, " {flow}").map_err(Exit::failure)?;
            }
            Ok(())
        }
    }
}
