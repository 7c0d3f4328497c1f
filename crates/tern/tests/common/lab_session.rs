//! What the lab tests share: one lab at a time per test file (a lock), its own directory, and
//! `tern lab down` when the test ends, also on panic (and before it starts, for a crashed earlier run).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a lab test waits for anything it polls for.
pub const PATIENCE: Duration = Duration::from_secs(60);

const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// `tern lab down` when the test ends (field order: the lab goes before the lock is released).
pub struct Session {
    pub dir: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let out = Command::new(TERN).args(["lab", "down", "--dir"]).arg(&self.dir).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("tern lab down {}: {}", self.dir.display(), String::from_utf8_lossy(&o.stderr))
            }
            Err(e) => eprintln!("tern lab down {}: {e}", self.dir.display()),
        }
    }
}

/// Takes `serial` (one lab at a time), names the directory `<tmp>/<prefix>-<test>`, and clears
/// what a crashed earlier run left there.
pub fn session(serial: &'static Mutex<()>, prefix: &str, test: &str) -> Session {
    let lock = serial.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("{prefix}-{test}"));
    let s = Session { dir, _lock: lock };
    // A crashed earlier run of this test.
    s.ok(&["down"]);
    s
}

impl Session {
    pub fn tern(&self, args: &[&str]) -> Output {
        Command::new(TERN)
            .arg("lab")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("TERN_NB")
            .output()
            .expect("run tern")
    }

    /// Runs `tern lab --dir DIR ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.tern(args);
        assert!(
            out.status.success(),
            "tern lab {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `vm add`, retried while the new chassis are not yet reported alive.
    pub fn vm(&self, name: &str, hv: u32, network: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.tern(&["vm", "add", name, "--hv", &hv.to_string(), "--network", network]);
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not alive") && Instant::now() < deadline, "vm add {name} failed: {err}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `tern lab status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }
}
