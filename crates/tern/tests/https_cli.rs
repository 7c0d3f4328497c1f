//! `tern server --tls-cert --tls-key`: the built binary serves the API over HTTPS (certificates
//! from a test CA), refuses half a TLS configuration and a key that does not match, and is
//! stopped by its own handle (never by name).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tern_store::testing::TestCa;

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn tern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
    command.env_remove("TERN_NB").env_remove("TERN_API_TOKEN").env("NO_COLOR", "1");
    command
}

/// A running `tern server`, killed (by its handle) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tern server` over HTTPS on a free loopback port (retried if another process takes the port).
fn start(cert: &Path, key: &Path, log_dir: &Path) -> (Server, u16) {
    for attempt in 0..3 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let log = log_dir.join(format!("server-{attempt}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = tern()
            .args(["server", "--nb", "memory:", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start tern server");
        let mut server = Server(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return (server, port);
            }
            if let Some(status) = server.0.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(text.contains("in use"), "tern server exited ({status}):\n{text}");
                break;
            }
            assert!(Instant::now() < deadline, "tern server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("tern server did not start after 3 attempts");
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run tern")
}

#[tokio::test]
async fn tern_server_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path(), "cli").expect("CA");
    let files = ca.server("cli-server").expect("server certificate");
    let (_server, port) = start(&files.cert, &files.key, dir.path());

    let pem = std::fs::read(ca.cert_path()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let resp = client.get(format!("{base}/")).send().await.expect("GET / over https");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["versions"][0]["links"][0]["href"], format!("{base}/v2.0/"));
    let resp = client
        .post(format!("{base}/v2.0/networks"))
        .json(&json!({"network": {"name": "cli-tls"}}))
        .send()
        .await
        .expect("POST over https");
    assert_eq!(resp.status(), 201);

    // Plain HTTP to the same port gets no API answer.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    assert!(plain.get(format!("http://127.0.0.1:{port}/")).send().await.is_err());
}

#[test]
fn tern_server_refuses_half_a_tls_configuration_and_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path(), "cli").expect("CA");
    let files = ca.server("cli-server").expect("server certificate");
    let other = ca.server("other").expect("another certificate");

    let out = run(tern()
        .args(["server", "--nb", "memory:", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&files.cert));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"), "{out:?}");

    let out = run(tern()
        .args(["server", "--nb", "memory:", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&other.key));
    assert_eq!(out.status.code(), Some(2), "bad input: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match") && stderr.contains(&*other.key.to_string_lossy()), "{stderr}");
}
