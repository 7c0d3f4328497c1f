//! Running the lab's external tools (`ip`, `ovs-*`, `ethtool`, `ping`) with a time bound, and the
//! lab's error type: every failure names the command line that failed and carries its stderr.
//! Also the pidfile / signal helpers that stop daemons by pid, never by name.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long a tool may take before it is killed and reported as failed.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the lab could not do something.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program could not be started at all (not installed?).
    #[error("cannot run {program} (run scripts/install-deps.sh: openvswitch-switch, iproute2, iputils-ping, ethtool): {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed (or did not finish in time).
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    /// Filesystem trouble in the lab directory.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `lab.json` is unreadable.
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The request makes no sense for this lab (unknown VM, bad MAC, name clash, ...).
    #[error("{0}")]
    Invalid(String),
    /// Something the lab waits for did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let std = cmd.as_std();
    let mut s = std.get_program().to_string_lossy().into_owned();
    for a in std.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Builds `ip netns exec NS PROGRAM` (or plain `PROGRAM` without a namespace).
pub(crate) fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// Runs a tool to completion and returns its stdout; a non-zero exit is an error.
pub(crate) async fn output(cmd: &mut Command) -> Result<String> {
    output_with_stdin(cmd, None).await
}

/// [`output`], feeding `stdin` to the tool.
pub(crate) async fn output_with_stdin(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String> {
    let (status, stdout, stderr) = raw_output(cmd, stdin, COMMAND_TIMEOUT).await?;
    match status {
        Some(s) if s.success() => Ok(String::from_utf8_lossy(&stdout).into_owned()),
        other => Err(LabError::Command {
            command: describe(cmd),
            status: other.map_or_else(|| format!("no exit within {COMMAND_TIMEOUT:?}"), |s| s.to_string()),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        }),
    }
}

/// Runs a tool and returns its exit status (None: killed after `timeout`), stdout and stderr,
/// without judging the status.
pub(crate) async fn raw_output(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<(Option<std::process::ExitStatus>, Vec<u8>, Vec<u8>)> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn { program, source })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await.map_err(io_err(format!("writing to {}", describe(cmd))))?;
        drop(pipe);
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok((Some(out.status), out.stdout, out.stderr)),
        Ok(Err(e)) => Err(io_err(format!("waiting for {}", describe(cmd)))(e)),
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => Ok((None, Vec::new(), Vec::new())),
    }
}

/// Runs a daemon that detaches (`--detach`): stdout to /dev/null and stderr to `stderr_file`
/// (a detached daemon may keep inherited pipes open forever), waiting only for the exit of the
/// foreground process. On failure the error carries that stderr and the tail of `log`.
pub(crate) async fn run_daemon(cmd: &mut Command, stderr_file: &Path, log: &Path) -> Result<()> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let file =
        std::fs::File::create(stderr_file).map_err(io_err(format!("creating {}", stderr_file.display())))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(file)).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn { program, source })?;
    let status = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await {
        Ok(Ok(s)) if s.success() => return Ok(()),
        Ok(Ok(s)) => s.to_string(),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => format!("no exit within {COMMAND_TIMEOUT:?}"),
    };
    let mut stderr = std::fs::read_to_string(stderr_file).unwrap_or_default().trim().to_string();
    let tail = tail(log, 20);
    if !tail.is_empty() {
        stderr.push_str("\n--- ");
        stderr.push_str(&log.display().to_string());
        stderr.push_str(" ---\n");
        stderr.push_str(&tail);
    }
    Err(LabError::Command { command: describe(cmd), status, stderr })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Blocking: runs a cleanup command, ignoring its outcome except for a debug log line.
pub(crate) fn run_quiet(program: &str, args: &[&str]) -> bool {
    let res = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match res {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::debug!(program, ?args, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "cleanup step failed");
            false
        }
        Err(e) => {
            tracing::debug!(program, ?args, error = %e, "cleanup step could not run");
            false
        }
    }
}

/// The pid in a pidfile, if the file is there and holds one.
pub(crate) fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A process is alive if /proc has it and it is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

/// True if `pid` is alive and is the daemon that wrote `pidfile`: one of its arguments is exactly
/// `--pidfile=<pidfile>`. A recycled pid therefore is never signalled.
pub(crate) fn is_daemon_of(pid: u32, pidfile: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = format!("--pidfile={}", pidfile.display());
    alive(pid) && cmdline.split(|b| *b == 0).any(|arg| arg == want.as_bytes())
}

/// Blocking: stops the daemon named by `pidfile` (SIGTERM, then SIGKILL), if it is still ours.
/// Returns the pid it stopped.
pub(crate) fn stop_by_pidfile(pidfile: &Path) -> Option<u32> {
    let pid = read_pidfile(pidfile)?;
    if !is_daemon_of(pid, pidfile) {
        return None;
    }
    let pid_s = pid.to_string();
    run_quiet("kill", &["-TERM", &pid_s]);
    if !wait_gone(pid, Duration::from_secs(5)) {
        tracing::warn!(pid, pidfile = %pidfile.display(), "daemon ignored SIGTERM; killing");
        run_quiet("kill", &["-KILL", &pid_s]);
        wait_gone(pid, Duration::from_secs(5));
    }
    Some(pid)
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

/// True if the network namespace NAME exists (`ip netns` keeps them under /run/netns).
pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}
