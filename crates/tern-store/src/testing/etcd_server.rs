//! A real, single-member etcd for tests and benches: started on free loopback ports with its own
//! temporary data directory, and stopped (by its pid, via the `Child` handle) when dropped. It
//! serves plain gRPC ([`EtcdServer::start`]) or TLS with client certificates
//! ([`EtcdServer::start_tls`]).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::{CertFiles, TestCa};

/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to retry with fresh ports when another process grabbed ours first.
const START_ATTEMPTS: usize = 3;

/// A running etcd. Dropping it kills that process and deletes its data.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    client_port: u16,
    /// Where `/health` answers in plain HTTP: the client port, or a metrics port under TLS.
    health_port: u16,
    tls: Option<TlsFiles>,
    // Dropped after `child` is killed (see `Drop`); removes the data dir and the log.
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it reports healthy.
    pub fn start() -> Result<EtcdServer, String> {
        Self::start_with(false, &[])
    }

    /// Starts a plain etcd as [`EtcdServer::start`] does, with more command-line flags (as in
    /// `["--auth-token-ttl", "1"]`).
    pub fn start_with_flags(flags: &[&str]) -> Result<EtcdServer, String> {
        Self::start_with(false, flags)
    }

    /// Starts etcd serving clients over TLS only, with `--client-cert-auth`: a client must present
    /// a certificate signed by the CA generated for this server. The CA, the server's certificate
    /// (for 127.0.0.1 and localhost) and one client certificate are written to its directory
    /// ([`EtcdServer::tls`]); [`EtcdServer::dsn`] is then an `etcds://` DSN naming them.
    pub fn start_tls() -> Result<EtcdServer, String> {
        Self::start_with(true, &[])
    }

    fn start_with(tls: bool, flags: &[&str]) -> Result<EtcdServer, String> {
        start_retrying(|binary| Self::start_once(binary, tls, flags))
    }

    fn start_once(binary: &Path, tls: bool, flags: &[&str]) -> Result<EtcdServer, Failure> {
        let fatal = Failure::Fatal;
        let dir = tempfile::Builder::new()
            .prefix("tern-etcd-")
            .tempdir()
            .map_err(|e| fatal(format!("cannot create a data directory for etcd: {e}")))?;
        let ports = free_ports(3).map_err(|e| fatal(format!("cannot find free ports for etcd: {e}")))?;
        let [client_port, peer_port, metrics_port] = [ports[0], ports[1], ports[2]];
        let log_path = dir.path().join("etcd.log");
        let log = File::create(&log_path)
            .map_err(|e| fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err =
            log.try_clone().map_err(|e| fatal(format!("cannot open {}: {e}", log_path.display())))?;
        let scheme = if tls { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
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
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let (tls, health_port) = if tls {
            let files = TlsFiles::generate(&dir.path().join("pki")).map_err(fatal)?;
            command
                .arg("--cert-file")
                .arg(&files.server.cert)
                .arg("--key-file")
                .arg(&files.server.key)
                .arg("--trusted-ca-file")
                .arg(&files.ca)
                .arg("--client-cert-auth")
                // `/health` in plain HTTP, without a client certificate.
                .arg("--listen-metrics-urls")
                .arg(format!("http://127.0.0.1:{metrics_port}"));
            (Some(files), metrics_port)
        } else {
            (None, client_port)
        };
        // etcd 3.4 refuses to run on architectures it does not officially support unless told to.
        if let Some(arch) = unsupported_go_arch() {
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let child = command.spawn().map_err(|e| fatal(format!("cannot start {}: {e}", binary.display())))?;
        let mut server = EtcdServer { child, client_port, health_port, tls, dir };
        server.wait_healthy(&log_path)?;
        Ok(server)
    }

    /// Polls `/health` until etcd says it is healthy, it exits, or [`START_TIMEOUT`] passes.
    fn wait_healthy(&mut self, log_path: &Path) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.health_port));
        loop {
            if health_ok(address) {
                return Ok(());
            }
            if let Some(failure) = exited(&mut self.child, "etcd", log_path) {
                return Err(failure);
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

    /// The store DSN for this server: "etcd://127.0.0.1:PORT", or under TLS
    /// "etcds://127.0.0.1:PORT?ca=PATH&cert=PATH&key=PATH" with the generated client certificate.
    pub fn dsn(&self) -> String {
        match &self.tls {
            None => format!("etcd://127.0.0.1:{}", self.client_port),
            Some(tls) => format!(
                "etcds://127.0.0.1:{}?ca={}&cert={}&key={}",
                self.client_port,
                tls.ca.display(),
                tls.client.cert.display(),
                tls.client.key.display()
            ),
        }
    }

    /// The certificates of a server started with [`EtcdServer::start_tls`].
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The TLS settings a client of this server uses: its CA and the generated client
    /// certificate. `None` for a plain server.
    pub fn client_tls(&self) -> Option<crate::EtcdTls> {
        self.tls.as_ref().map(|tls| crate::EtcdTls {
            ca: tls.ca.clone(),
            identity: Some((tls.client.cert.clone(), tls.client.key.clone())),
        })
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

/// The PEM files of a TLS etcd, all under its directory.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate that signed both certificates below.
    pub ca: PathBuf,
    /// etcd's certificate (for 127.0.0.1 and localhost) and key.
    pub server: CertFiles,
    /// A client certificate and key that etcd accepts.
    pub client: CertFiles,
}

impl TlsFiles {
    fn generate(dir: &Path) -> Result<TlsFiles, String> {
        let ca = TestCa::generate(dir, "etcd")?;
        Ok(TlsFiles {
            ca: ca.cert_path().to_path_buf(),
            server: ca.server("server")?,
            client: ca.client("client")?,
        })
    }
}

pub(super) enum Failure {
    /// Another process took a port between our probe and etcd's bind: try again.
    PortTaken(String),
    Fatal(String),
}

/// Whether `child`, an etcd (`who`) still starting, has exited (or cannot be checked on): why,
/// with its log's tail; a port another process took is worth another try.
pub(super) fn exited(child: &mut Child, who: &str, log_path: &Path) -> Option<Failure> {
    match child.try_wait() {
        Ok(Some(status)) => {
            let log = log_tail(log_path);
            let message = format!("{who} exited during startup ({status}); log:\n{log}");
            Some(if log.contains("address already in use") {
                Failure::PortTaken(message)
            } else {
                Failure::Fatal(message)
            })
        }
        Ok(None) => None,
        Err(e) => Some(Failure::Fatal(format!("cannot check on {who}: {e}"))),
    }
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

/// Three distinct free loopback ports (all bound at once, then released).
/// `n` distinct free loopback ports (all held until the end, then released for etcd to bind).
pub(super) fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners =
        (0..n).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Finds the etcd binary and runs `once` with it, again (with fresh ports) while another process
/// took one of its ports first, at most [`START_ATTEMPTS`] times.
pub(super) fn start_retrying<T>(mut once: impl FnMut(&Path) -> Result<T, Failure>) -> Result<T, String> {
    let binary = find_etcd()?;
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        match once(&binary) {
            Ok(started) => return Ok(started),
            Err(Failure::PortTaken(e)) => last_error = e,
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
    Err(last_error)
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
