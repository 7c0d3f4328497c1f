//! Test support (feature `testing`): [`OvsSandbox`] runs a private ovsdb-server + ovs-vswitchd
//! in its own run directory (optionally inside a network namespace), following LAB.md, and stops
//! exactly those two daemons, by the pids in their pidfiles, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The Open_vSwitch schema installed by the openvswitch packages.
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// How long a daemon may take to start (detach) or a tool to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the sandbox could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A program could not be run at all (not installed?).
    #[error(
        "cannot run {program} (is Open vSwitch installed? apt-get install openvswitch-switch): {source}"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A command failed; carries its stderr and the tail of the relevant log.
    #[error("{command} failed ({status}): {stderr}{}", if .log_tail.is_empty() { String::new() } else { format!("\n--- log tail ---\n{}", .log_tail) })]
    Failed { command: String, status: String, stderr: String, log_tail: String },
    /// Filesystem trouble in the sandbox directory.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The daemons' pids, as their pidfiles say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxPids {
    pub ovsdb_server: Option<u32>,
    pub ovs_vswitchd: Option<u32>,
}

/// A private Open vSwitch: ovsdb-server and ovs-vswitchd in a temporary run directory.
///
/// Bridges must use `datapath_type=netdev` (no kernel datapath). The userspace datapath creates
/// tap devices (`ovs-netdev`, one per bridge / internal port) in the daemon's network namespace,
/// so sandboxes sharing a namespace clash on those names: parallel tests should use
/// [`OvsSandbox::start_isolated`].
#[derive(Debug)]
pub struct OvsSandbox {
    dir: tempfile::TempDir,
    netns: Option<String>,
    owns_netns: bool,
}

static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);

impl OvsSandbox {
    /// Starts both daemons in the current network namespace.
    pub fn start() -> Result<Self, SandboxError> {
        Self::launch(None, false)
    }

    /// Starts both daemons under `ip netns exec NAME` (the namespace must exist; it is left alone).
    pub fn start_in_netns(name: &str) -> Result<Self, SandboxError> {
        Self::launch(Some(name.to_string()), false)
    }

    /// Creates a fresh network namespace, starts both daemons in it, and deletes it on drop.
    pub fn start_isolated() -> Result<Self, SandboxError> {
        let name =
            format!("tern-ovs-{}-{}", std::process::id(), NETNS_COUNTER.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]), "", None)?;
        Self::launch(Some(name), true)
    }

    fn launch(netns: Option<String>, owns_netns: bool) -> Result<Self, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("tern-ovs-")
            .tempdir()
            .map_err(|source| SandboxError::Io { what: "creating the sandbox directory".into(), source })?;
        // From here on, Drop cleans up whatever was started.
        let sb = OvsSandbox { dir, netns, owns_netns };
        let db = sb.path("conf.db");
        run(Command::new("ovsdb-tool").arg("create").arg(&db).arg(SCHEMA), "", None)?;
        sb.start_ovsdb_server()?;
        sb.vsctl_inner(&["--no-wait", "init"])?;
        sb.start_vswitchd()?;
        Ok(sb)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn daemon(&self, program: &str) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        cmd.env("OVS_RUNDIR", self.dir.path())
            .env("OVS_LOGDIR", self.dir.path())
            .env("OVS_DBDIR", self.dir.path());
        cmd
    }

    /// Starts (or restarts, after [`OvsSandbox::kill_ovsdb_server`]) ovsdb-server on the same
    /// database file and socket.
    pub fn start_ovsdb_server(&self) -> Result<(), SandboxError> {
        let mut cmd = self.daemon("ovsdb-server");
        cmd.arg(self.path("conf.db"))
            .arg(format!("--remote=punix:{}", self.path("db.sock").display()))
            .arg(format!("--pidfile={}", self.path("ovsdb.pid").display()))
            .arg("--detach")
            .arg(format!("--log-file={}", self.path("ovsdb.log").display()));
        run(&mut cmd, "ovsdb-server.stderr", Some(&self.path("ovsdb.log")))
    }

    fn start_vswitchd(&self) -> Result<(), SandboxError> {
        let mut cmd = self.daemon("ovs-vswitchd");
        cmd.arg(format!("unix:{}", self.path("db.sock").display()))
            .arg(format!("--pidfile={}", self.path("vsd.pid").display()))
            .arg("--detach")
            .arg(format!("--log-file={}", self.path("vsd.log").display()));
        run(&mut cmd, "ovs-vswitchd.stderr", Some(&self.path("vsd.log")))
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The network namespace the daemons run in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The OVSDB target: `unix:DIR/db.sock`.
    pub fn db_sock(&self) -> String {
        format!("unix:{}", self.path("db.sock").display())
    }

    /// The OpenFlow management socket ovs-vswitchd creates per bridge: `DIR/<bridge>.mgmt`.
    pub fn mgmt_sock(&self, bridge: &str) -> PathBuf {
        self.path(&format!("{bridge}.mgmt"))
    }

    /// The pids in the pidfiles.
    pub fn pids(&self) -> SandboxPids {
        SandboxPids { ovsdb_server: self.pidfile("ovsdb.pid"), ovs_vswitchd: self.pidfile("vsd.pid") }
    }

    fn pidfile(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.path(name)).ok()?.trim().parse().ok()
    }

    fn vsctl_inner(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--db={}", self.db_sock())).arg("--timeout=30").args(args);
        output(&mut cmd, Some(&self.path("vsd.log")))
    }

    /// Runs `ovs-vsctl --db=unix:DIR/db.sock --timeout=30 ARGS`; returns its stdout.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        self.vsctl_inner(args)
    }

    /// Runs `ovs-ofctl --timeout=30 ARGS` with `OVS_RUNDIR=DIR`; returns its stdout.
    /// Sets up the bridge the OpenFlow tests and benchmarks program: `br-int` as tern's lab makes it
    /// (netdev datapath, `fail_mode=secure`, OpenFlow 1.3-1.5), two internal ports with ofports 1
    /// and 2, and the flow-based Geneve port with ofport 3. Returns the bridge's OpenFlow target
    /// (`unix:<dir>/br-int.mgmt`).
    pub fn add_flow_test_bridge(&self) -> Result<String, SandboxError> {
        self.vsctl(&[
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow13,OpenFlow14,OpenFlow15",
        ])?;
        for (name, ofport) in [("p1", "ofport_request=1"), ("p2", "ofport_request=2")] {
            self.vsctl(&[
                "add-port",
                "br-int",
                name,
                "--",
                "set",
                "interface",
                name,
                "type=internal",
                ofport,
            ])?;
        }
        self.vsctl(&[
            "add-port",
            "br-int",
            "tun",
            "--",
            "set",
            "interface",
            "tun",
            "type=geneve",
            "options:remote_ip=flow",
            "options:key=flow",
            "ofport_request=3",
        ])?;
        Ok(format!("unix:{}", self.mgmt_sock("br-int").display()))
    }

    pub fn ofctl(&self, args: &[&str]) -> Result<String, SandboxError> {
        let mut cmd = Command::new("ovs-ofctl");
        cmd.env("OVS_RUNDIR", self.dir.path()).arg("--timeout=30").args(args);
        output(&mut cmd, Some(&self.path("vsd.log")))
    }

    /// Runs `ovs-appctl -t DIR/ovs-vswitchd.<pid>.ctl ARGS`; returns its stdout.
    pub fn appctl_vswitchd(&self, args: &[&str]) -> Result<String, SandboxError> {
        let pid = self.pidfile("vsd.pid").ok_or_else(|| SandboxError::Io {
            what: "reading vsd.pid".into(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let ctl = self.path(&format!("ovs-vswitchd.{pid}.ctl"));
        let mut cmd = Command::new("ovs-appctl");
        cmd.env("OVS_RUNDIR", self.dir.path()).arg("--timeout=30").arg("-t").arg(ctl).args(args);
        output(&mut cmd, Some(&self.path("vsd.log")))
    }

    /// Kills this sandbox's ovsdb-server (SIGKILL, by the pid in its pidfile, like a crash) and
    /// waits until it is gone. Returns the pid it killed.
    pub fn kill_ovsdb_server(&self) -> Result<u32, SandboxError> {
        let pid = self.pidfile("ovsdb.pid").filter(|p| self.is_ours(*p)).ok_or_else(|| SandboxError::Io {
            what: "ovsdb-server of this sandbox is not running".into(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        signal(pid, "KILL");
        if !wait_gone(pid, Duration::from_secs(10)) {
            return Err(SandboxError::Io {
                what: format!("ovsdb-server {pid} survived SIGKILL"),
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
        Ok(pid)
    }

    /// True if `pid` is a live process started for this sandbox (its command line names our
    /// directory), so a recycled pid is never signalled.
    fn is_ours(&self, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let dir = self.dir.path().to_string_lossy().into_owned();
        alive(pid) && String::from_utf8_lossy(&cmdline).contains(&dir)
    }

    fn stop(&self, pidfile: &str) {
        let Some(pid) = self.pidfile(pidfile) else { return };
        if !self.is_ours(pid) {
            return;
        }
        signal(pid, "TERM");
        if !wait_gone(pid, Duration::from_secs(5)) {
            tracing::warn!(pid, pidfile, "OVS daemon ignored SIGTERM; killing");
            signal(pid, "KILL");
            wait_gone(pid, Duration::from_secs(5));
        }
    }
}

impl Drop for OvsSandbox {
    fn drop(&mut self) {
        self.stop("vsd.pid");
        self.stop("ovsdb.pid");
        if self.owns_netns {
            if let Some(ns) = &self.netns {
                let _ = Command::new("ip")
                    .args(["netns", "del", ns])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A process is alive if /proc has it and it is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command that may detach (a daemon): stdout to /dev/null, stderr to a file in the
/// directory of `log` (a detached daemon may keep pipes open), bounded by [`COMMAND_TIMEOUT`].
fn run(cmd: &mut Command, stderr_name: &str, log: Option<&Path>) -> Result<(), SandboxError> {
    let command = describe(cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let stderr_path = match (log, stderr_name.is_empty()) {
        (Some(l), false) => l.parent().map(|d| d.join(stderr_name)),
        _ => None,
    };
    let stderr = match &stderr_path {
        Some(p) => Stdio::from(
            std::fs::File::create(p)
                .map_err(|source| SandboxError::Io { what: format!("creating {}", p.display()), source })?,
        ),
        None => Stdio::piped(),
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|source| SandboxError::Spawn { program, source })?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("no exit within {COMMAND_TIMEOUT:?}");
            }
            Err(e) => break format!("wait failed: {e}"),
        }
    };
    let stderr = match &stderr_path {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => child
            .stderr
            .take()
            .map(|mut e| {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
                s
            })
            .unwrap_or_default(),
    };
    Err(SandboxError::Failed {
        command,
        status,
        stderr: stderr.trim().to_string(),
        log_tail: log.map(|l| tail(l, 20)).unwrap_or_default(),
    })
}

/// Runs a tool (not a daemon) and returns its stdout.
fn output(cmd: &mut Command, log: Option<&Path>) -> Result<String, SandboxError> {
    let command = describe(cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().map_err(|source| SandboxError::Spawn { program, source })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(SandboxError::Failed {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        log_tail: log.map(|l| tail(l, 20)).unwrap_or_default(),
    })
}
