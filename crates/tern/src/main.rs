//! `tern`: the one binary. Subcommands grow with the project: `server` (the Neutron API),
//! `controller` (one per chassis), `db` (operate the NB store) and `flows` (read a bridge's flows)
//! today; `allinone`, `lab` and `status` as their issues land.
//!
//! Exit status: 0 success, 1 a failure of the system (store unreachable, IO), 2 bad input
//! (usage, unknown kind, malformed or invalid object, revision conflict, missing object),
//! 3 a watch that must relist because the history it needs was compacted.

mod allinone;
mod chassis;
mod controller;
mod db;
mod exit;
mod flows;
mod lab;
mod metrics;
mod server;
mod signals;
mod status;

use clap::{Parser, Subcommand};
use exit::Exit;

/// mimalloc rather than the system's allocator: a controller builds and drops thousands of small
/// flow objects per computation, and with glibc's allocator about a third of that time went to
/// allocation and consolidation (measured with perf on the fleet benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tern", version, about = "tern: a distributed SDN controller for OpenStack-style clouds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read and write the NB store directly (operators, scripts, debugging).
    Db(db::DbArgs),
    /// Serve the Neutron v2.0-compatible API (default 127.0.0.1:9696) over the NB store.
    Server(server::ServerArgs),
    /// A one-machine cloud: the Neutron API and this host's controller in one process.
    Allinone(allinone::AllinoneArgs),
    /// Run the local controller of one chassis (compute node).
    Controller(controller::ControllerArgs),
    /// Inspect a bridge's OpenFlow tables.
    Flows(flows::FlowsArgs),
    /// A test bed of OVS hypervisors and VMs on this machine, with tern's control plane.
    Lab(lab::LabArgs),
    /// The chassis: tunnel IP, alive or down, last heartbeat, ports bound there, migrations in flight.
    Status(status::StatusArgs),
    /// Operate on registered chassis (delete a stale one).
    Chassis(chassis::ChassisArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Long-running services say what they do; one-shot commands print only their output.
    let default_level = match cli.command {
        Command::Server(_) | Command::Controller(_) | Command::Allinone(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TERN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return Exit::failure(anyhow::anyhow!("cannot start the async runtime: {e}")).report(),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Db(args) => db::run(args).await,
            Command::Flows(args) => flows::run(args).await,
            Command::Server(args) => server::run(args).await,
            Command::Controller(args) => controller::run(args).await,
            Command::Lab(args) => lab::run(args).await,
            Command::Allinone(args) => allinone::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Chassis(args) => chassis::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(exit) => exit.report(),
    }
}
