//! Compatibility with the real openstacksdk from PyPI: `tern server` is started on a free loopback
//! port and `tests/python/openstacksdk_compat.py` drives it through every resource kind, without
//! Keystone. The Python side runs in `target/python-venv`, which `scripts/python-env.sh` creates
//! (`make test` runs it first); without it these tests fail rather than skip.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tern_store::testing::EtcdServer;

/// How long `tern server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often to retry with a fresh port when another process took ours between probe and bind.
const START_ATTEMPTS: usize = 3;
/// The chassis registered before the server starts, which `GET /v2.0/agents` must list.
const AGENT: &str = "compat-agent";

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The virtualenv's Python; fails (never skips) when the virtualenv is missing.
fn venv_python() -> PathBuf {
    let python = workspace_root().join("target/python-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/python-env.sh first (make test does) to install openstacksdk into \
         target/python-venv",
        python.display()
    );
    python
}

/// A running `tern server`; dropping it kills that one process (by its pid, through the handle).
struct Server {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Server {
    fn start(dsn: &str, token: Option<&str>, log_dir: &Path) -> Server {
        let mut last_error = String::new();
        for attempt in 0..START_ATTEMPTS {
            let log = log_dir.join(format!("tern-server-{attempt}.log"));
            match Server::start_once(dsn, token, &log) {
                Ok(server) => return server,
                Err((retry, message)) if retry => last_error = message,
                Err((_, message)) => panic!("{message}"),
            }
        }
        panic!("tern server did not start after {START_ATTEMPTS} attempts: {last_error}")
    }

    /// Err((port_taken, message)).
    fn start_once(dsn: &str, token: Option<&str>, log: &Path) -> Result<Server, (bool, String)> {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log_file = File::create(log).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
        command.args(["server", "--listen", &listen, "--nb", dsn]);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command
            .env_remove("TERN_NB")
            .env_remove("TERN_API_TOKEN")
            .env("NO_COLOR", "1")
            .env("TERN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file);
        let child = command.spawn().map_err(|e| (false, format!("cannot start tern server: {e}")))?;
        let mut server = Server { child, endpoint: format!("http://{listen}"), log: log.to_path_buf() };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait().expect("check on tern server") {
                let log = server.log_text();
                let port_taken = log.contains("in use");
                return Err((
                    port_taken,
                    format!("tern server exited during startup ({status}); its output:\n{log}"),
                ));
            }
            if Instant::now() >= deadline {
                return Err((
                    false,
                    format!(
                        "tern server (pid {}) did not accept connections on {listen} within {START_TIMEOUT:?}; its \
                         output:\n{}",
                        server.child.id(),
                        server.log_text()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Registers a chassis in the store before the server owns it, so `GET /v2.0/agents` has one to list.
fn register_chassis(dsn: &str) {
    let chassis = format!(r#"{{"id":"{AGENT}","tunnel_ip":"192.0.2.10"}}"#);
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["db", "--nb", dsn, "put", "chassis", &chassis])
        .env_remove("TERN_NB")
        .output()
        .expect("run tern db put chassis");
    assert!(
        out.status.success(),
        "tern db put chassis failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the compatibility script against `server` and asserts it passed, showing its output.
fn run_compat(server: &Server, token: Option<&str>, extra: &[&str]) {
    let python = venv_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openstacksdk_compat.py");
    let mut command = Command::new(&python);
    command.arg(&script).arg(&server.endpoint);
    if let Some(token) = token {
        command.arg(token);
    }
    let out: Output = command
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the openstacksdk compatibility script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "openstacksdk_compat.py {extra:?} failed ({}):\n{stdout}\n{stderr}\n--- tern server output ---\n{}",
        out.status,
        server.log_text()
    );
}

#[test]
fn openstacksdk_drives_tern_server_on_the_embedded_store() {
    venv_python();
    let dir = tempfile::tempdir().expect("temporary directory");
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    register_chassis(&dsn);
    let server = Server::start(&dsn, None, dir.path());
    run_compat(&server, None, &["--agent", AGENT]);
}

#[test]
fn openstacksdk_drives_tern_server_on_etcd() {
    venv_python();
    let etcd = EtcdServer::start().expect("start etcd");
    let dir = tempfile::tempdir().expect("temporary directory");
    register_chassis(&etcd.dsn());
    let server = Server::start(&etcd.dsn(), None, dir.path());
    run_compat(&server, None, &["--quick"]);
}

#[test]
fn openstacksdk_with_a_token() {
    venv_python();
    let dir = tempfile::tempdir().expect("temporary directory");
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    let token = "compat-secret-token";
    let server = Server::start(&dsn, Some(token), dir.path());
    run_compat(&server, Some(token), &["--quick"]);
}
