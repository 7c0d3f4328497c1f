//! Compatibility with the real openstacksdk from PyPI: `tern server` is started on a free loopback
//! port and `tests/python/openstacksdk_compat.py` drives it through every resource kind, without
//! Keystone. The Python side runs in `target/python-venv`, which `scripts/python-env.sh` creates
//! (`make test` runs it first); without it these tests fail rather than skip.

#[path = "common/server.rs"]
mod server;

use server::Server;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tern_store::testing::EtcdServer;

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
