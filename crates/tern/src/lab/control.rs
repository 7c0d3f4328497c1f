//! The lab's control plane: the processes tern starts (recorded as `NAME.pid`, `NAME.log`,
//! `NAME.cmd.json` in the lab directory, each carrying `TERN_LAB_DIR=<dir>` in its environment so
//! a recycled pid is never signalled), `control.json`, and the embedded `tern lab serve` process.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use tern_controller::agent::{self, ControllerConfig};
use tern_lab::{Hypervisor, Lab};
use tern_store::nb::Nb;
use tokio::sync::watch;

use super::api::Api;
use super::{poll, progress, secs};
use crate::exit::Exit;

/// The environment variable that marks a process as this lab's.
const LAB_ENV: &str = "TERN_LAB_DIR";
/// The control plane's description, in the lab directory.
const CONTROL_FILE: &str = "control.json";
/// Every controller's flow log (`tern_controller::flowlog`), read by `tern lab migrate`.
pub const FLOW_LOG: &str = "flows.jsonl";
/// The embedded control process' name (`control.pid`, `control.log`).
const EMBEDDED: &str = "control";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NbMode {
    /// One process: redb store, Neutron API and every controller.
    Embedded,
    /// A local etcd, `tern server`, and one `tern controller` process per hypervisor.
    Etcd,
}

impl fmt::Display for NbMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NbMode::Embedded => "embedded",
            NbMode::Etcd => "etcd",
        })
    }
}

/// `control.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlState {
    pub mode: NbMode,
    /// The NB DSN.
    pub nb: String,
    /// The Neutron API's base URL.
    pub api: String,
    /// The embedded process' pid.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl ControlState {
    pub fn read(dir: &Path) -> anyhow::Result<ControlState> {
        let path = dir.join(CONTROL_FILE);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("no control plane recorded ({})", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join(format!("{CONTROL_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(CONTROL_FILE)).context("writing control.json")
    }
}

/// Faults injected into the control plane (tests), `faults.json` in the lab directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Hypervisors whose controller ignores every Migration record.
    #[serde(default)]
    pub blind_to_migrations: Vec<u32>,
}

impl Faults {
    const FILE: &'static str = "faults.json";

    /// The lab's faults; none when the file is absent.
    pub fn read(dir: &Path) -> anyhow::Result<Faults> {
        match std::fs::read(dir.join(Self::FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("reading faults.json"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Faults::default()),
            Err(e) => Err(anyhow!(e).context("reading faults.json")),
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        if self.blind_to_migrations.is_empty() {
            return Ok(());
        }
        progress(format!(
            "fault injected: controllers of {:?} ignore Migration records",
            self.blind_to_migrations
        ));
        std::fs::write(dir.join(Self::FILE), serde_json::to_vec_pretty(self)?).context("writing faults.json")
    }
}

/// One recorded process, for status.
#[derive(Debug, Serialize)]
pub struct Daemon {
    pub name: String,
    pub pid: Option<u32>,
    pub alive: bool,
}

fn pidfile(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

pub(crate) fn logfile(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

fn cmdfile(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.cmd.json"))
}

fn controller_name(index: u32) -> String {
    format!("controller-hv{index}")
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// In /proc and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Alive and started by this lab: its environment holds `TERN_LAB_DIR=<dir>`.
fn is_ours(pid: u32, dir: &Path) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let want = format!("{LAB_ENV}={}", dir.display());
    alive(pid) && env.split(|b| *b == 0).any(|e| e == want.as_bytes())
}

/// The live pid of recorded process `name`, if it is still ours.
pub(crate) fn live_pid(dir: &Path, name: &str) -> Option<u32> {
    read_pid(&pidfile(dir, name)).filter(|p| is_ours(*p, dir))
}

pub(crate) fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(logfile(dir, name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Starts `argv` detached (own process group, stdio to `NAME.log`) and records its pid and
/// command line.
pub(crate) fn spawn_recorded(dir: &Path, name: &str, argv: &[String]) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logfile(dir, name))
        .with_context(|| format!("opening {name}.log"))?;
    let mut c = std::process::Command::new(&argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env(LAB_ENV, dir)
        .env("NO_COLOR", "1")
        .process_group(0);
    if std::env::var_os("TERN_LOG").is_none() {
        c.env("TERN_LOG", "info");
    }
    let child = c.spawn().with_context(|| format!("starting {}", argv.join(" ")))?;
    let pid = child.id();
    // The child is not waited for: it outlives this command.
    drop(child);
    std::fs::write(pidfile(dir, name), format!("{pid}\n")).with_context(|| format!("writing {name}.pid"))?;
    std::fs::write(cmdfile(dir, name), serde_json::to_vec(argv)?)
        .with_context(|| format!("writing {name}.cmd.json"))?;
    Ok(pid)
}

/// Stops recorded process `name` (SIGTERM, SIGKILL after 5 s) if it is alive and ours.
async fn stop(dir: &Path, name: &str) -> Option<u32> {
    let pid = live_pid(dir, name)?;
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if alive(pid) {
        progress(format!("{name} (pid {pid}) ignored SIGTERM; killing it"));
        signal("-KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some(pid)
}

/// Stops recorded process `name` like [`stop`] and forgets it (its pidfile goes), so that it is
/// no longer one of the lab's daemons; returns its pid if it was running.
pub(crate) async fn stop_recorded(dir: &Path, name: &str) -> Option<u32> {
    let pid = stop(dir, name).await;
    let _ = std::fs::remove_file(pidfile(dir, name));
    pid
}

/// The recorded process names: the background churn first (it writes to the NB), then the
/// controllers, the API, the embedded process, etcd.
fn recorded(dir: &Path) -> Vec<String> {
    let mut controllers: Vec<(u32, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let name = n.strip_suffix(".pid")?;
            let index = name.strip_prefix("controller-hv")?.parse().ok()?;
            Some((index, name.to_owned()))
        })
        .collect();
    controllers.sort();
    let mut names: Vec<String> = Vec::new();
    if pidfile(dir, super::background::CHURN).exists() {
        names.push(super::background::CHURN.to_owned());
    }
    names.extend(controllers.into_iter().map(|(_, n)| n));
    for n in ["server", EMBEDDED, "etcd"] {
        if pidfile(dir, n).exists() {
            names.push(n.to_owned());
        }
    }
    names
}

/// Stops every recorded process; returns what was stopped.
pub async fn stop_all(dir: &Path) -> Vec<(String, u32)> {
    let mut stopped = Vec::new();
    for name in recorded(dir) {
        if let Some(pid) = stop(dir, &name).await {
            stopped.push((name, pid));
        }
    }
    stopped
}

/// The recorded processes and whether they are alive.
pub fn daemons(dir: &Path) -> Vec<Daemon> {
    recorded(dir)
        .into_iter()
        .map(|name| {
            let pid = read_pid(&pidfile(dir, &name));
            let alive = pid.is_some_and(|p| is_ours(p, dir));
            Daemon { name, pid, alive }
        })
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

pub(crate) fn tern_exe() -> anyhow::Result<String> {
    Ok(std::env::current_exe().context("locating the tern binary")?.display().to_string())
}

/// Starts the control plane of a freshly created lab.
pub async fn start(lab: &Lab, mode: NbMode) -> anyhow::Result<()> {
    let dir = lab.dir();
    match mode {
        NbMode::Embedded => {
            let argv =
                vec![tern_exe()?, "lab".into(), "serve".into(), "--dir".into(), dir.display().to_string()];
            let pid = spawn_recorded(dir, EMBEDDED, &argv)?;
            progress(format!(
                "embedded control plane started (pid {pid}, log {})",
                logfile(dir, EMBEDDED).display()
            ));
            poll("the embedded control plane to listen", Duration::from_secs(30), || async move {
                if !alive(pid) {
                    bail!("it exited:\n{}", log_tail(dir, EMBEDDED));
                }
                Ok(ControlState::read(dir).ok().filter(|c| c.pid == Some(pid)))
            })
            .await?;
        }
        NbMode::Etcd => {
            let client = free_port()?;
            let peer = free_port()?;
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let data = dir.join("etcd");
            let argv: Vec<String> = [
                "etcd",
                "--name",
                "tern-lab",
                "--data-dir",
                &data.display().to_string(),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("tern-lab={peer_url}"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let pid = spawn_recorded(dir, "etcd", &argv)?;
            progress(format!("etcd started (pid {pid}, {client_url})"));
            let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
            let health = format!("{client_url}/health");
            poll("etcd to be healthy", Duration::from_secs(30), || {
                let (http, health) = (http.clone(), health.clone());
                async move {
                    if !alive(pid) {
                        bail!("etcd exited:\n{}", log_tail(dir, "etcd"));
                    }
                    let Ok(r) = http.get(&health).send().await else { return Ok(None) };
                    Ok(r.text().await.ok().filter(|t| t.contains("true")).map(|_| ()))
                }
            })
            .await?;
            let nb = format!("etcd://127.0.0.1:{client}");
            let listen = format!("127.0.0.1:{}", free_port()?);
            let argv = vec![
                tern_exe()?,
                "server".into(),
                "--listen".into(),
                listen.clone(),
                "--nb".into(),
                nb.clone(),
            ];
            let pid = spawn_recorded(dir, "server", &argv)?;
            progress(format!("tern server started (pid {pid}, http://{listen})"));
            ControlState { mode, nb, api: format!("http://{listen}"), pid: None }.write(dir)?;
            for hv in lab.hypervisors() {
                start_controller(lab, hv).await?;
            }
        }
    }
    Ok(())
}

/// Starts hypervisor `hv`'s controller: a process in etcd labs; the embedded process picks new
/// hypervisors up by itself.
pub async fn start_controller(lab: &Lab, hv: &Hypervisor) -> anyhow::Result<()> {
    let control = ControlState::read(lab.dir())?;
    if control.mode == NbMode::Embedded {
        return Ok(());
    }
    let argv = vec![
        tern_exe()?,
        "controller".into(),
        "--nb".into(),
        control.nb,
        "--chassis".into(),
        hv.name().into(),
        "--tunnel-ip".into(),
        hv.tunnel_ip().to_string(),
        "--ovsdb".into(),
        hv.db_sock(),
        "--of".into(),
        hv.mgmt_sock(),
        "--datapath-type".into(),
        "netdev".into(),
        "--flow-log".into(),
        lab.dir().join(FLOW_LOG).display().to_string(),
        "--bridge-mappings".into(),
        format!("{}:{}", tern_lab::PHYSNET, tern_lab::hv::BR_EX),
    ];
    let mut argv = argv;
    if Faults::read(lab.dir())?.blind_to_migrations.contains(&hv.index()) {
        argv.push("--blind-to-migrations".into());
    }
    let name = controller_name(hv.index());
    let pid = spawn_recorded(lab.dir(), &name, &argv)?;
    progress(format!(
        "{} controller started (pid {pid}, log {})",
        hv.name(),
        logfile(lab.dir(), &name).display()
    ));
    Ok(())
}

/// `tern lab controller restart hvN`: stops the controller if it runs and starts its recorded
/// command line again.
pub async fn restart_controller(lab: &Lab, index: u32) -> Result<u32, Exit> {
    let (name, argv) = recorded_controller(lab, index)?;
    if let Some(pid) = stop(lab.dir(), &name).await {
        progress(format!("hv{index}: stopped controller pid {pid}"));
    }
    spawn_recorded(lab.dir(), &name, &argv).map_err(Exit::failure)
}

/// `tern lab controller kill hvN`: SIGKILL, as a crash; returns the pid.
pub async fn kill_controller(lab: &Lab, index: u32) -> Result<u32, Exit> {
    let (name, _) = recorded_controller(lab, index)?;
    let pid = live_pid(lab.dir(), &name)
        .ok_or_else(|| Exit::bad_input(anyhow!("the controller of hv{index} is not running")))?;
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    poll("the controller to die", Duration::from_secs(10), || async move { Ok((!alive(pid)).then_some(())) })
        .await
        .map_err(Exit::failure)?;
    Ok(pid)
}

/// `tern lab controller start hvN`: starts a controller that is not running.
pub async fn start_controller_again(lab: &Lab, index: u32) -> Result<u32, Exit> {
    let (name, argv) = recorded_controller(lab, index)?;
    if let Some(pid) = live_pid(lab.dir(), &name) {
        return Err(Exit::bad_input(anyhow!("the controller of hv{index} is running (pid {pid})")));
    }
    spawn_recorded(lab.dir(), &name, &argv).map_err(Exit::failure)
}

/// The process name and recorded command line of hvN's controller (`--nb etcd` labs only).
fn recorded_controller(lab: &Lab, index: u32) -> Result<(String, Vec<String>), Exit> {
    let control = ControlState::read(lab.dir()).map_err(Exit::failure)?;
    if control.mode == NbMode::Embedded {
        return Err(Exit::bad_input(anyhow!(
            "this lab's controllers are tasks of the embedded process; managing them needs a lab up with --nb etcd"
        )));
    }
    let name = controller_name(index);
    let bytes = std::fs::read(cmdfile(lab.dir(), &name))
        .map_err(|e| Exit::bad_input(anyhow!("no controller recorded for hv{index}: {e}")))?;
    let argv = serde_json::from_slice(&bytes).map_err(|e| Exit::failure(anyhow!(e)))?;
    Ok((name, argv))
}

/// Waits until the API answers and every ready hypervisor's chassis is registered; fails early
/// when a recorded process died.
pub async fn wait_ready(lab: &Lab, timeout: Duration) -> anyhow::Result<()> {
    let dir = lab.dir();
    let started = Instant::now();
    let want: BTreeSet<String> =
        lab.hypervisors().iter().filter(|h| h.is_ready()).map(|h| h.name().to_owned()).collect();
    let api = Api::open(dir)?;
    let api = &api;
    let want = &want;
    let last = std::cell::Cell::new(None::<usize>);
    let last = &last;
    poll("every chassis to register", timeout, || async move {
        for d in daemons(dir) {
            if !d.alive {
                bail!("{} (pid {:?}) is not running:\n{}", d.name, d.pid, log_tail(dir, &d.name));
            }
        }
        let hosts: BTreeSet<String> = match api.chassis().await {
            Ok(h) => h.into_iter().collect(),
            Err(_) => return Ok(None),
        };
        let have = want.intersection(&hosts).count();
        if last.get() != Some(have) {
            last.set(Some(have));
            progress(format!("chassis registered: {have}/{} ({:.1} s)", want.len(), secs(started)));
        }
        Ok((have == want.len()).then_some(()))
    })
    .await
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One hypervisor's controller inside the embedded process, restarted when it fails.
async fn supervise(config: ControllerConfig, nb: Nb, flow_log: PathBuf, stop: watch::Receiver<bool>) {
    let reports = tern_controller::flowlog::spawn(flow_log, config.chassis.clone());
    loop {
        let res = agent::run(config.clone(), nb.clone(), Some(reports.clone()), stopped(stop.clone())).await;
        if *stop.borrow() {
            return;
        }
        match res {
            Ok(()) => tracing::warn!(chassis = %config.chassis, "controller returned; restarting"),
            Err(e) => {
                tracing::warn!(chassis = %config.chassis, error = format!("{e:#}"), "controller failed; restarting")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped(stop.clone()) => return,
        }
    }
}

/// `tern lab serve`: the embedded control plane. Owns `redb:DIR/nb.redb`, serves the Neutron API on
/// a free loopback port (recorded in `control.json`; beside it the lab-only route `tern lab load`
/// writes NB objects through, [`super::background::ROUTE`]) and runs one controller task per ready
/// hypervisor, picking up hypervisors added later, until SIGTERM or ctrl-c.
pub async fn serve(dir: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let lab = Lab::open(dir)?;
    let dir = lab.dir().to_path_buf();
    let dsn = format!("redb:{}", dir.join("nb.redb").display());
    let store = tern_store::open(&dsn).await.with_context(|| format!("opening the NB store {dsn}"))?;
    let nb = Nb::new(store);
    tern_api::prepare_store(&nb).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the API")?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let api = tern_api::ApiState::new(nb.clone());
    let app = tern_api::router(api).merge(super::background::routes(nb.clone()));
    let api_stop = stopped(stop_rx.clone());
    let api = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(api_stop).await });
    ControlState {
        mode: NbMode::Embedded,
        nb: dsn.clone(),
        api: format!("http://{addr}"),
        pid: Some(std::process::id()),
    }
    .write(&dir)?;
    tracing::info!(api = %addr, nb = %dsn, "embedded lab control plane up");
    let mut term = signal(SignalKind::terminate())?;
    let faults = Faults::read(&dir)?;
    let mut started = BTreeSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if let Ok(lab) = Lab::open(&dir) {
            for hv in lab.hypervisors().iter().filter(|h| h.is_ready()) {
                if started.insert(hv.index()) {
                    let config = ControllerConfig {
                        bridge: tern_lab::hv::BR_INT.into(),
                        datapath_type: "netdev".into(),
                        blind_to_migrations: faults.blind_to_migrations.contains(&hv.index()),
                        bridge_mappings: [(tern_lab::PHYSNET.to_owned(), tern_lab::hv::BR_EX.to_owned())]
                            .into(),
                        ..ControllerConfig::new(hv.name(), hv.tunnel_ip(), hv.db_sock(), hv.mgmt_sock())
                    };
                    tracing::info!(chassis = %config.chassis, "starting controller");
                    tasks.spawn(supervise(config, nb.clone(), dir.join(FLOW_LOG), stop_rx.clone()));
                }
            }
        }
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
        let _ = api.await;
    })
    .await;
    Ok(())
}
