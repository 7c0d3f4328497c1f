//! `tern db`: operate the NB store directly. Objects go in and come out as Neutron-shaped JSON;
//! every write is validated exactly as the API validates it.

use crate::exit::Exit;
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use std::io::{BufRead, Write};
use tern_api::invariants;
use tern_model::Kind;
use tern_store::nb::{Nb, NbError, NbEvent};
use tern_store::{Dsn, StoreError};

#[derive(Args)]
pub struct DbArgs {
    /// The NB store: redb:PATH, memory:, etcd://HOST:PORT[,HOST:PORT] or, over TLS,
    /// etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH; with an etcd user,
    /// etcd[s]://USER:PASSWORD@HOST:PORT or ?user=NAME&password-file=PATH.
    #[arg(long, env = "TERN_NB", hide_env_values = true, default_value = Dsn::DEFAULT, global = true)]
    nb: String,
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Validate and store an object (create, or replace the object with the same id). Prints it.
    ///
    /// An absent id is generated. A non-zero revision_number must match the stored one.
    Put {
        /// network, subnet, port, router, floatingip, security_group, chassis, migration, port_binding
        kind: String,
        /// The object as JSON, or - to read it from standard input.
        json: String,
    },
    /// Print one object as JSON.
    Get { kind: String, id: String },
    /// List the objects of a kind (a table; --json for a JSON array).
    Ls {
        kind: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an object.
    Rm { kind: String, id: String },
    /// Print every NB object, grouped by kind, with the store revision they reflect.
    Dump,
    /// Print NB events as JSON lines: {"revision","kind","id","action","object"}.
    Watch {
        /// Print the events after this revision (as printed by `dump` or `revision`); default: from now.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Store one object of KIND per line of standard input; print each as soon as it is durable.
    Load { kind: String },
    /// Print the store's current revision.
    Revision,
    /// Forget the change history before REV (watches from earlier revisions must relist).
    Compact { revision: u64 },
    /// Check the NB's invariants on one snapshot: every reference resolves, every claim has its
    /// owner, routers and their interface ports agree, every floating IP address port has its
    /// floating IP, no overlapping subnets, one floating IP per fixed IP. Prints each violation,
    /// one per line (with the repair --repair would make); exit status 1 if there is any.
    Check {
        /// Print {"revision", "violations": [...]} (and "repaired" with --repair) as JSON.
        #[arg(long)]
        json: bool,
        /// Fix what is unambiguous (orphan floating IP address ports, router interfaces whose
        /// port is gone, dangling security group references, orphan claims and guard keys, ...),
        /// print what was done, then check again.
        #[arg(long)]
        repair: bool,
    },
}

fn kind(name: &str) -> Result<Kind, Exit> {
    name.parse::<Kind>().map_err(Exit::bad_input)
}

/// Maps an NB error to the exit status its cause deserves.
fn nb_exit(e: NbError) -> Exit {
    if e.is_bad_input() {
        Exit::bad_input(e)
    } else {
        Exit::failure(e)
    }
}

fn store_exit(e: StoreError) -> Exit {
    nb_exit(NbError::Store(e))
}

fn print_json(value: &serde_json::Value) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(Exit::failure)?;
    writeln!(out).map_err(Exit::failure)
}

pub async fn run(args: DbArgs) -> Result<(), Exit> {
    // Parse the arguments that can be wrong before touching the store.
    let dsn: Dsn = args.nb.parse().map_err(Exit::bad_input)?;
    let command_kind = match &args.command {
        DbCommand::Put { kind: k, .. }
        | DbCommand::Get { kind: k, .. }
        | DbCommand::Ls { kind: k, .. }
        | DbCommand::Rm { kind: k, .. }
        | DbCommand::Load { kind: k } => Some(kind(k)?),
        _ => None,
    };
    let store = tern_store::open_dsn(&dsn)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    let nb = Nb::new(store);
    match args.command {
        DbCommand::Put { json, .. } => {
            let json = if json == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading standard input")
                    .map_err(Exit::failure)?
            } else {
                json
            };
            let stored = nb.put_json(command_kind.expect("parsed"), &json).await.map_err(nb_exit)?;
            print_json(&stored.object.to_json_value())
        }
        DbCommand::Get { id, .. } => {
            let stored = nb.fetch(command_kind.expect("parsed"), &id).await.map_err(nb_exit)?;
            print_json(&stored.object.to_json_value())
        }
        DbCommand::Ls { json, .. } => {
            let (objects, _) = nb.list(command_kind.expect("parsed")).await.map_err(nb_exit)?;
            let values: Vec<serde_json::Value> = objects.iter().map(|s| s.object.to_json_value()).collect();
            if json {
                print_json(&serde_json::Value::Array(values))
            } else {
                print_table(&values)
            }
        }
        DbCommand::Rm { id, .. } => {
            let kind = command_kind.expect("parsed");
            let revision = nb.delete(kind, &id).await.map_err(nb_exit)?;
            println!("deleted {kind} {id} at revision {revision}");
            Ok(())
        }
        DbCommand::Dump => {
            let (all, revision) = nb.dump().await.map_err(nb_exit)?;
            let objects: serde_json::Map<String, serde_json::Value> = all
                .into_iter()
                .map(|(kind, objs)| {
                    (kind.name().to_owned(), objs.iter().map(|o| o.to_json_value()).collect())
                })
                .collect();
            print_json(&serde_json::json!({ "revision": revision, "objects": objects }))
        }
        DbCommand::Watch { from, count } => watch(&nb, from, count).await,
        DbCommand::Load { .. } => load(&nb, command_kind.expect("parsed")).await,
        DbCommand::Revision => {
            println!("{}", nb.store().revision().await.map_err(store_exit)?);
            Ok(())
        }
        DbCommand::Compact { revision } => {
            nb.store().compact(revision).await.map_err(store_exit)?;
            println!("compacted history before revision {revision}");
            Ok(())
        }
        DbCommand::Check { json, repair } => check(&nb, json, repair).await,
    }
}

/// `tern db check [--repair] [--json]`.
async fn check(nb: &Nb, json: bool, repair: bool) -> Result<(), Exit> {
    let mut report = invariants::check(nb).await.map_err(nb_exit)?;
    let mut repaired = Vec::new();
    // A repair can uncover another (an interface dropped leaves its port's guard key): a few
    // passes, while they make progress.
    for _ in 0..3 {
        if !repair || !report.violations.iter().any(|v| v.repair.is_some()) {
            break;
        }
        let done = invariants::repair(nb, &report.violations).await;
        let progress = done.iter().any(|d| d.error.is_none());
        repaired.extend(done);
        report = invariants::check(nb).await.map_err(nb_exit)?;
        if !progress {
            break;
        }
    }
    if json {
        let mut out = serde_json::json!({ "revision": report.revision, "violations": report.violations });
        if repair {
            out["repaired"] = serde_json::to_value(&repaired).map_err(Exit::failure)?;
        }
        print_json(&out)?;
    } else {
        let mut out = std::io::stdout().lock();
        for line in
            repaired.iter().map(ToString::to_string).chain(report.violations.iter().map(ToString::to_string))
        {
            writeln!(out, "{line}").map_err(Exit::failure)?;
        }
    }
    match report.violations.len() {
        0 => Ok(()),
        n => Err(Exit::failure(anyhow!(
            "{n} violation(s) of the NB's invariants{}",
            if repair { " left" } else { " (tern db check --repair fixes the unambiguous ones)" }
        ))),
    }
}

async fn watch(nb: &Nb, from: Option<u64>, count: Option<u64>) -> Result<(), Exit> {
    // `--from R` means "after R": the store's watch starts at R + 1.
    let mut watch = nb.watch(from.map_or(0, |r| r + 1)).await.map_err(nb_exit)?;
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        let Some(event) = watch.next().await else {
            return Err(Exit::failure(anyhow!("the store ended the watch")));
        };
        let line = match event.map_err(nb_exit)? {
            NbEvent::Put { revision, object } => serde_json::json!({
                "revision": revision, "kind": object.kind().name(), "id": object.id(),
                "action": "put", "object": object.to_json_value(),
            }),
            NbEvent::Delete { revision, kind, id } => serde_json::json!({
                "revision": revision, "kind": kind.name(), "id": id, "action": "delete", "object": null,
            }),
            NbEvent::Relist { compact_revision } => {
                println!(
                    "{}",
                    serde_json::json!({ "action": "relist", "compact_revision": compact_revision })
                );
                return Err(Exit {
                    code: 3,
                    error: anyhow!(
                        "history before revision {compact_revision} was compacted: the events after \
                         revision {} are no longer all known; relist (`tern db dump`) and watch from \
                         the revision it prints",
                        from.unwrap_or(0)
                    ),
                });
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(Exit::failure)?;
        seen += 1;
    }
    Ok(())
}

async fn load(nb: &Nb, kind: Kind) -> Result<(), Exit> {
    let stdin = std::io::stdin();
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading standard input").map_err(Exit::failure)?;
        if line.trim().is_empty() {
            continue;
        }
        let stored = nb.put_json(kind, &line).await.map_err(|e| {
            let bad = e.is_bad_input();
            let e = anyhow!(e).context(format!("line {}", n + 1));
            if bad {
                Exit::bad_input(e)
            } else {
                Exit::failure(e)
            }
        })?;
        // Printed only once the write is acknowledged (durable, for redb and etcd).
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::json!({"id": stored.object.id(), "revision": stored.mod_revision}))
            .and_then(|_| out.flush())
            .map_err(Exit::failure)?;
    }
    Ok(())
}

/// A plain table of the objects' id, name and revision_number.
fn print_table(objects: &[serde_json::Value]) -> Result<(), Exit> {
    let rows: Vec<[String; 3]> = objects
        .iter()
        .map(|o| {
            let text = |f: &str| o.get(f).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let name = match text("name") {
                n if n.is_empty() => text("hostname"),
                n => n,
            };
            [text("id"), name, o.get("revision_number").map_or(String::new(), |v| v.to_string())]
        })
        .collect();
    let header = ["ID", "NAME", "REVISION"];
    let width = |i: usize| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    let mut out = std::io::stdout().lock();
    let mut line = |r: [&str; 3]| writeln!(out, "{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
    line(header).map_err(Exit::failure)?;
    for r in &rows {
        line([&r[0], &r[1], &r[2]]).map_err(Exit::failure)?;
    }
    Ok(())
}
