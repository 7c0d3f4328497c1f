//! etcd over TLS with client certificates: a real etcd started with `--client-cert-auth` and
//! certificates generated for the test (`EtcdServer::start_tls`); the conformance suite runs over it
//! in `conformance.rs`. Here: clients without a certificate, with one from another CA, or that
//! do not trust the server's CA are refused with an error saying so; a DSN naming a file that
//! cannot be read is an error naming the file.

use std::path::Path;
use std::time::{Duration, Instant};
use tern_store::etcd::EtcdStore;
use tern_store::testing::{EtcdServer, TestCa};
use tern_store::{EtcdTls, Store, StoreError};

/// A refused client must hear so within the connect timeout (5 s) and its first round trip.
const REFUSAL_WITHIN: Duration = Duration::from_secs(15);

async fn start_tls() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start_tls).await.unwrap().expect("start etcd with TLS")
}

/// Connects with `tls` and expects a refusal that says TLS or certificate, in time.
async fn expect_refused(server: &EtcdServer, tls: &EtcdTls) -> String {
    let started = Instant::now();
    let err = EtcdStore::connect_tls(&[server.endpoint()], tls).await.expect_err("connected");
    let elapsed = started.elapsed();
    let text = err.to_string();
    eprintln!("{text} (after {elapsed:?})");
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(text.contains(&server.endpoint()), "names the endpoint: {text}");
    let lower = text.to_lowercase();
    assert!(lower.contains("certificate") || lower.contains("tls"), "says TLS or certificate: {text}");
    assert!(elapsed < REFUSAL_WITHIN, "refused after {elapsed:?}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_its_certificate_reads_and_writes() {
    let server = start_tls().await;
    let store = EtcdStore::connect_tls(&[server.endpoint()], &server.client_tls().unwrap()).await.unwrap();
    let revision = store.put("/tls/a", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.get("/tls/a").await.unwrap().unwrap().mod_revision, revision);
    // The same endpoint written as an https:// URL works too.
    let url = format!("https://{}", server.endpoint());
    let store = EtcdStore::connect_tls(&[url], &server.client_tls().unwrap()).await.unwrap();
    assert_eq!(store.get("/tls/a").await.unwrap().unwrap().value, b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    let server = start_tls().await;
    let tls = EtcdTls { identity: None, ..server.client_tls().unwrap() };
    expect_refused(&server, &tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    let server = start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let other = TestCa::generate(dir.path(), "other").unwrap();
    let intruder = other.client("intruder").unwrap();
    let tls = EtcdTls { identity: Some((intruder.cert, intruder.key)), ..server.client_tls().unwrap() };
    expect_refused(&server, &tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_from_an_untrusted_ca_is_refused() {
    let server = start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let other = TestCa::generate(dir.path(), "other").unwrap();
    let tls = EtcdTls { ca: other.cert_path().to_path_buf(), ..server.client_tls().unwrap() };
    expect_refused(&server, &tls).await;
}

#[tokio::test]
async fn dsn_naming_a_missing_or_wrong_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path(), "some").unwrap();
    let client = ca.client("client").unwrap();
    let missing = dir.path().join("missing.pem");
    let show = |p: &Path| p.display().to_string();
    let dsn = |ca: &Path, cert: &Path, key: &Path| {
        format!("etcds://127.0.0.1:1?ca={}&cert={}&key={}", show(ca), show(cert), show(key))
    };
    for (dsn, file, says) in [
        (dsn(&missing, &client.cert, &client.key), &missing, "CA certificate (ca=)"),
        (dsn(ca.cert_path(), &missing, &client.key), &missing, "client certificate (cert=)"),
        (dsn(ca.cert_path(), &client.cert, &missing), &missing, "client key (key=)"),
        // A key where the CA should be, a certificate where the key should be.
        (dsn(&client.key, &client.cert, &client.key), &client.key, "is not a PEM file"),
        (dsn(ca.cert_path(), &client.cert, &client.cert), &client.cert, "is not a PEM file"),
    ] {
        let started = Instant::now();
        let err = tern_store::open(&dsn).await.map(|_| ()).expect_err(&dsn).to_string();
        assert!(err.contains(&show(file)) && err.contains(says), "{dsn}: {err}");
        // Nothing was dialled: the files are checked first.
        assert!(started.elapsed() < Duration::from_secs(1), "{dsn}: {err}");
    }
    // A bad parameter is named before any file is read.
    let err = tern_store::open("etcds://127.0.0.1:1?ca=x.pem&password=p")
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown parameter \"password\""), "{err}");
}
