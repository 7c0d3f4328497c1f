//! A real, single-member etcd for tests and benches: started on free loopback ports with its own
//! temporary data directory, and stopped (by its pid, via the `Child` handle) when dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to retry with fresh ports when another process grabbed ours first.
const START_ATTEMPTS: usize = 3;

/// A running etcd. Dropping it kills that process and deletes its data.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    client_port: u16,
    // Dropped after `child` is killed (see `Drop`); removes the data dir and the log.
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it reports healthy.
    pub fn start() -> Result<EtcdServer, String> {
        let binary = find_etcd()?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binary) {
                Ok(server) => return Ok(server),
                Err(Failure::PortTaken(e)) => last_error = e,
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error)
    }

    fn start_once(binary: &Path) -> Result<EtcdServer, Failure> {
        let fatal = Failure::Fatal;
        let dir = tempfile::Builder::new()
            .prefix("tern-etcd-")
            .tempdir()
            .map_err(|e| fatal(format!("cannot create a data directory for etcd: {e}")))?;
        let (client_port, peer_port) =
            free_ports().map_err(|e| fatal(format!("cannot find free ports for etcd: {e}")))?;
        let log_path = dir.path().join("etcd.log");
        let log = File::create(&log_path)
            .map_err(|e| fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err =
            log.try_clone().map_err(|e| fatal(format!("cannot open {}: {e}", log_path.display())))?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(binary);
        command
            .arg("--name")
            .arg("tern-test")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("tern-test={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // etcd 3.4 refuses to run on architectures it does not officially support unless told to.
        if let Some(arch) = unsupported_go_arch() {
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let child = command.spawn().map_err(|e| fatal(format!("cannot start {}: {e}", binary.display())))?;
        let mut server = EtcdServer { child, client_port, dir };
        server.wait_healthy(&log_path)?;
        Ok(server)
    }

    /// Polls `/health` until etcd says it is healthy, it exits, or [`START_TIMEOUT`] passes.
    fn wait_healthy(&mut self, log_path: &Path) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            if health_ok(address) {
                return Ok(());
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let log = log_tail(log_path);
                    let message = format!("etcd exited during startup ({status}); log:\n{log}");
                    return Err(if log.contains("address already in use") {
                        Failure::PortTaken(message)
                    } else {
                        Failure::Fatal(message)
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Fatal(format!("cannot check on etcd: {e}"))),
            }
            if Instant::now() >= deadline {
                // Drop kills the child.
                return Err(Failure::Fatal(format!(
                    "etcd (pid {}) not healthy within {START_TIMEOUT:?}; log:\n{}",
                    self.child.id(),
                    log_tail(log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client address, "127.0.0.1:PORT".
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The store DSN for this server, "etcd://127.0.0.1:PORT".
    pub fn dsn(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    /// The etcd process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// etcd's data directory and log live under this directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Kills this child only (by its pid, through the handle), then reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Failure {
    /// Another process took a port between our probe and etcd's bind: try again.
    PortTaken(String),
    Fatal(String),
}

pub(super) fn find_etcd() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"));
    on_path
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "etcd not found: install the Debian package etcd-server (make test does)".to_string())
}

/// Two distinct free loopback ports (both bound at once, then released).
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// The `ETCD_UNSUPPORTED_ARCH` value etcd 3.4 wants on this architecture, if any.
pub(super) fn unsupported_go_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => None,
        "aarch64" => Some("arm64"),
        "x86" => Some("386"),
        "powerpc64" => Some("ppc64le"),
        "arm" => Some("arm"),
        other => Some(other),
    }
}

/// A plain HTTP/1.0 `GET /health`; true if etcd answers `"health":"true"`.
pub(super) fn health_ok(address: SocketAddr) -> bool {
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err() || stream.set_write_timeout(Some(timeout)).is_err() {
        return false;
    }
    let request = format!("GET /health HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return false;
    }
    response.starts_with("HTTP/1.") && response.contains("200") && {
        let compact: String = response.chars().filter(|c| !c.is_whitespace()).collect();
        compact.contains("\"health\":\"true\"")
    }
}

/// The last lines of etcd's log, for error messages.
pub(super) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
