//! A `tern server` process for the tests that drive the built binary over HTTP: started on a free
//! loopback port (retried when another process takes the port first), its output kept in a log
//! file, and stopped by its own handle (never by name).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `tern server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often to retry with a fresh port when another process took ours between probe and bind.
const START_ATTEMPTS: usize = 3;

/// A running `tern server`; dropping it kills that one process (by its pid, through the handle).
pub struct Server {
    pub child: Child,
    pub endpoint: String,
    log: PathBuf,
}

impl Server {
    #[allow(dead_code)] // not every test that includes this file uses every starter
    pub fn start(dsn: &str, token: Option<&str>, log_dir: &Path) -> Server {
        let token_args = token.map(|t| vec!["--token", t]).unwrap_or_default();
        Server::start_with(dsn, &token_args, log_dir)
    }

    /// [`Server::start`] with more arguments for `tern server` (`--auth keystone --config F`).
    pub fn start_with(dsn: &str, args: &[&str], log_dir: &Path) -> Server {
        let mut last_error = String::new();
        for attempt in 0..START_ATTEMPTS {
            let log = log_dir.join(format!("tern-server-{attempt}.log"));
            match Server::start_once(dsn, args, &log) {
                Ok(server) => return server,
                Err((retry, message)) if retry => last_error = message,
                Err((_, message)) => panic!("{message}"),
            }
        }
        panic!("tern server did not start after {START_ATTEMPTS} attempts: {last_error}")
    }

    /// Err((port_taken, message)).
    fn start_once(dsn: &str, args: &[&str], log: &Path) -> Result<Server, (bool, String)> {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log_file = File::create(log).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
        command.args(["server", "--listen", &listen, "--nb", dsn]);
        command.args(args);
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

    pub fn log_text(&self) -> String {
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
