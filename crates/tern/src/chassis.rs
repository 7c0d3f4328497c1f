//! `tern chassis`: operate on registered chassis. `delete NAME` removes a stale chassis' NB object
//! (with `--force` also its heartbeat key); every controller then drops its tunnels and
//! remote-port flows toward it by itself, because its pipeline view no longer has that chassis.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use tern_model::Kind;
use tern_store::liveness;
use tern_store::nb::NbError;
use tern_store::Dsn;

use crate::exit::Exit;
use crate::status::{nb_exit, open_nb};

#[derive(Args)]
pub struct ChassisArgs {
    /// The NB store: redb:PATH, memory:, etcd://HOST:PORT[,HOST:PORT] or, over TLS,
    /// etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH; with an etcd user,
    /// etcd[s]://USER:PASSWORD@HOST:PORT or ?user=NAME&password-file=PATH.
    #[arg(long, env = "TERN_NB", hide_env_values = true, default_value = Dsn::DEFAULT, global = true)]
    nb: String,
    #[command(subcommand)]
    command: ChassisCommand,
}

#[derive(Subcommand)]
enum ChassisCommand {
    /// Delete a stale chassis. A live one (its heartbeat key exists) is refused unless --force.
    ///
    /// Exit status 2 for an unknown or (without --force) live chassis. A controller that is still
    /// running keeps beating and registers its chassis again when it restarts: stop it first.
    Delete {
        /// The chassis name (its id, as `tern status` prints it).
        name: String,
        /// Delete even a live chassis, and its heartbeat key with it.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(args: ChassisArgs) -> Result<(), Exit> {
    let nb = open_nb(&args.nb).await?;
    match args.command {
        ChassisCommand::Delete { name, force } => {
            if nb.get(Kind::Chassis, &name).await.map_err(nb_exit)?.is_none() {
                return Err(Exit::bad_input(anyhow!("no chassis named {name:?}")));
            }
            let key = liveness::heartbeat_key(&name);
            let heartbeat = nb.store().get(&key).await.map_err(|e| nb_exit(e.into()))?;
            if heartbeat.is_some() && !force {
                let at = heartbeat
                    .and_then(|kv| serde_json::from_slice::<liveness::Heartbeat>(&kv.value).ok())
                    .map_or_else(String::new, |h| format!(" (last heartbeat {})", h.heartbeat_at));
                return Err(Exit::bad_input(anyhow!(
                    "chassis {name:?} is alive{at}: refusing to delete it; stop its controller first, or use --force"
                )));
            }
            let revision = match nb.delete(Kind::Chassis, &name).await {
                Ok(r) => r,
                Err(NbError::NotFound { .. }) => {
                    return Err(Exit::bad_input(anyhow!("no chassis named {name:?}")));
                }
                Err(e) => return Err(nb_exit(e)),
            };
            let mut also = String::new();
            if force && nb.store().delete(&key).await.map_err(|e| nb_exit(e.into()))?.is_some() {
                also = " and its heartbeat".to_string();
            }
            println!("deleted chassis {name}{also} at revision {revision}");
            Ok(())
        }
    }
}
