//! `tern server` over HTTPS: the API answers clients that trust its CA (HTTP/1.1 and, by ALPN,
//! HTTP/2) with https links; clients that do not trust it, plain HTTP and broken handshakes get
//! nothing and stop nothing; graceful shutdown finishes the requests in flight; certificate and
//! key files that cannot serve are refused at start with the file and the reason.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tern_api::{ApiConfig, ApiState, TlsFiles};
use tern_store::testing::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on anything a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    server: TlsFiles,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path(), "api").expect("CA");
    let files = ca.server("api-server").expect("server certificate");
    Pki { ca, server: TlsFiles { cert: files.cert, key: files.key }, dir }
}

impl Pki {
    /// A client that trusts this CA (and no other).
    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.ca.cert_path()).expect("read the CA certificate");
        let ca = reqwest::Certificate::from_pem(&pem).expect("CA certificate");
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(WAIT)
            .build()
            .expect("client")
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write a file");
        path
    }
}

/// An HTTPS server on 127.0.0.1:0 serving `app` through `tern_api::tls::serve`.
struct Https {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(app: axum::Router, files: &TlsFiles) -> Https {
    let config = tern_api::tls::server_config(files).expect("TLS configuration");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(tern_api::tls::serve(listener, config, app, async {
        let _ = stopped.await;
    }));
    Https { addr, stop: Some(stop), task }
}

async fn serve_api(files: &TlsFiles) -> Https {
    let nb = common::memory_nb();
    tern_api::prepare_store(&nb).await.expect("prepare the store");
    serve(tern_api::router(ApiState::new(nb)), files).await
}

impl Https {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Signals shutdown and waits for the server to return.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server did not stop")
            .expect("server task")
            .expect("serve");
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (reqwest::StatusCode, Value) {
    let resp = client.get(url).send().await.expect("GET over https");
    (resp.status(), resp.json().await.expect("JSON body"))
}

#[tokio::test]
async fn the_api_answers_over_https_to_clients_trusting_the_ca() {
    let pki = pki();
    let server = serve_api(&pki.server).await;
    let client = pki.client();

    let resp = client.get(server.url("/")).send().await.expect("GET /");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["versions"][0]["links"][0]["href"], server.url("/v2.0/"), "links are https");

    let resp = client
        .post(server.url("/v2.0/networks"))
        .json(&json!({"network": {"name": "over-tls"}}))
        .send()
        .await
        .expect("POST /v2.0/networks");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("JSON");
    assert_eq!(created["network"]["name"], "over-tls");

    // HTTP/1.1 too, and by IP address (the certificate names 127.0.0.1 as well).
    let http1 = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(pki.ca.cert_path()).unwrap()).unwrap(),
        )
        .http1_only()
        .build()
        .unwrap();
    let resp = http1.get(format!("https://{}/v2.0/networks?limit=1", server.addr)).send().await.expect("GET");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["networks"][0]["id"], created["network"]["id"]);

    // Pagination links are https too (clients follow them).
    for n in 0..2 {
        let body = json!({"network": {"name": format!("n{n}")}});
        let resp = client.post(server.url("/v2.0/networks")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    let (status, page) = get(&client, &server.url("/v2.0/networks?limit=1")).await;
    assert_eq!(status, 200);
    let next = page["networks_links"][0]["href"].as_str().expect("a next link");
    assert!(next.starts_with(&server.url("/v2.0/networks?")), "{next}");
    let (status, _) = get(&client, next).await;
    assert_eq!(status, 200);

    server.stop().await;
}

#[tokio::test]
async fn clients_not_trusting_the_ca_and_plain_http_get_nothing() {
    let pki = pki();
    let server = serve_api(&pki.server).await;

    // A client with no roots: its handshake fails on the unknown issuer.
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).timeout(WAIT).build().unwrap();
    let err = untrusting.get(server.url("/")).send().await.expect_err("an untrusted server");
    assert!(err.is_connect(), "{err:?}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // A client trusting another CA.
    let other = TestCa::generate(&pki.dir.path().join("other"), "other").expect("CA");
    let pem = std::fs::read(other.cert_path()).unwrap();
    let wrong_ca = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(WAIT)
        .build()
        .unwrap();
    assert!(wrong_ca.get(server.url("/")).send().await.is_err());

    // Plain HTTP to the TLS port: no API answer.
    let plain = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let got = plain.get(format!("http://{}/", server.addr)).send().await;
    assert!(got.is_err(), "plain HTTP got an answer: {got:?}");

    // The server still serves.
    let (status, _) = get(&pki.client(), &server.url("/")).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn broken_and_stalled_handshakes_stop_nothing() {
    let pki = pki();
    let server = serve_api(&pki.server).await;

    // Garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"\x16\x03\x01\x00\x05hello, not TLS\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, garbage.read_to_end(&mut buf)).await.expect("the server hangs up");
    // Connected and gone at once.
    drop(TcpStream::connect(server.addr).await.unwrap());
    // Connected and silent (held through what follows): its handshake holds up no one else.
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    // Half a handshake: a ClientHello cut short.
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await.unwrap();

    let client = pki.client();
    for _ in 0..3 {
        let (status, _) = get(&client, &server.url("/v2.0/networks")).await;
        assert_eq!(status, 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let pki = pki();
    let (started_tx, mut started) = tokio::sync::mpsc::channel::<()>(1);
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let started = started_tx.clone();
            async move {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }
        }),
    );
    let server = serve(app, &pki.server).await;
    let client = pki.client();
    let url = server.url("/slow");
    let request = tokio::spawn(async move { client.get(url).send().await?.text().await });
    tokio::time::timeout(WAIT, started.recv()).await.expect("the request reached the handler");
    let addr = server.addr;
    server.stop().await;
    let body = request.await.unwrap().expect("the request in flight was answered");
    assert_eq!(body, "done");
    // And the port is closed.
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

/// `serve_with_shutdown` with `tls`: HTTPS on the configured address, stopped gracefully with an
/// idle keep-alive connection open.
#[tokio::test]
async fn serve_with_shutdown_serves_https() {
    let pki = pki();
    let (addr, stop, task) = loop {
        // A free port (another process may take it before we bind: then retry).
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = ApiConfig { tls: Some(pki.server.clone()), ..ApiConfig::new(addr, common::memory_nb()) };
        let (stop, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn(tern_api::serve_with_shutdown(config, async {
            let _ = stopped.await;
        }));
        let up = tokio::time::timeout(WAIT, async {
            loop {
                if TcpStream::connect(addr).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        tokio::select! {
            _ = up => break (addr, stop, task),
            r = &mut task => {
                let e = r.unwrap().expect_err("the server returned");
                assert!(format!("{e:#}").contains("cannot listen"), "{e:#}");
            }
        }
    };
    let client = pki.client();
    let (status, v) = get(&client, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(v["versions"][0]["links"][0]["href"], format!("https://localhost:{}/v2.0/", addr.port()));
    // The client keeps its connection open (idle): shutdown does not wait for it.
    let _ = stop.send(());
    tokio::time::timeout(WAIT, task).await.expect("stopped").unwrap().expect("serve_with_shutdown");
}

/// What `serve_with_shutdown` says about `files` (it refuses them before binding anything).
async fn refusal(cert: &Path, key: &Path) -> String {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let tls = TlsFiles { cert: cert.to_path_buf(), key: key.to_path_buf() };
    let config = ApiConfig { tls: Some(tls), ..ApiConfig::new(listen, common::memory_nb()) };
    let e = tokio::time::timeout(WAIT, tern_api::serve_with_shutdown(config, std::future::pending()))
        .await
        .expect("refused at once")
        .expect_err("refused");
    format!("{e:#}")
}

#[tokio::test]
async fn a_key_not_matching_the_certificate_is_refused() {
    let pki = pki();
    let other = pki.ca.server("other-server").expect("another certificate");
    let e = refusal(&pki.server.cert, &other.key).await;
    assert!(e.contains("does not match"), "{e}");
    assert!(e.contains(&*other.key.to_string_lossy()), "{e}");
    assert!(e.contains(&*pki.server.cert.to_string_lossy()), "{e}");

    // The CA's certificate first in the chain: the key does not match it either.
    let ca = std::fs::read(pki.ca.cert_path()).unwrap();
    let mut chain = ca.clone();
    chain.extend(std::fs::read(&pki.server.cert).unwrap());
    let reversed = pki.file("reversed.pem", &chain);
    let e = refusal(&reversed, &pki.server.key).await;
    assert!(e.contains("does not match") && e.contains("must come first"), "{e}");

    // The right order (server, then CA) is fine.
    let mut chain = std::fs::read(&pki.server.cert).unwrap();
    chain.extend(ca);
    let ordered = pki.file("chain.pem", &chain);
    let files = TlsFiles { cert: ordered, key: pki.server.key.clone() };
    tern_api::tls::server_config(&files).expect("a chain with the server's certificate first");
}

#[tokio::test]
async fn missing_and_unusable_files_are_named() {
    let pki = pki();
    let (cert, key) = (&pki.server.cert, &pki.server.key);
    let missing = pki.dir.path().join("nowhere.pem");
    let name = |p: &Path| p.to_string_lossy().into_owned();

    let e = refusal(&missing, key).await;
    assert!(e.contains("cannot read the TLS certificate") && e.contains(&name(&missing)), "{e}");
    assert!(e.contains("No such file"), "{e}");
    let e = refusal(cert, &missing).await;
    assert!(e.contains("cannot read the TLS key") && e.contains(&name(&missing)), "{e}");

    let garbage = pki.file("garbage.pem", b"not a certificate\n");
    let e = refusal(&garbage, key).await;
    assert!(e.contains(&format!("the TLS certificate {} is not a PEM file", name(&garbage))), "{e}");
    let e = refusal(cert, &garbage).await;
    assert!(e.contains(&format!("the TLS key {} is not a PEM file", name(&garbage))), "{e}");

    // The two swapped.
    let e = refusal(key, cert).await;
    assert!(e.contains("holds no certificate") && e.contains("swapped"), "{e}");
    assert!(e.contains(&name(key)), "{e}");
    let e = refusal(cert, cert).await;
    assert!(e.contains(&format!("the TLS key {} holds no private key", name(cert))), "{e}");
    assert!(e.contains("swapped"), "{e}");

    // A cut-off PEM section, an encrypted key.
    let text = std::fs::read(cert).unwrap();
    let cut = pki.file("cut.pem", &text[..text.len() / 2]);
    let e = refusal(&cut, key).await;
    assert!(e.contains(&format!("the TLS certificate {} is not valid PEM", name(&cut))), "{e}");
    let encrypted = pki.file(
        "encrypted.pem",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQww\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = refusal(cert, &encrypted).await;
    assert!(e.contains("encrypted") && e.contains(&name(&encrypted)), "{e}");
}
