//! etcd's own users (`etcdctl auth enable`): a real etcd with users set up through its auth API
//! and authentication enabled; the conformance suite runs as such a user in `conformance.rs`.
//! Here: a wrong password, an unknown user, no user and a user without access to the keys are
//! refused with errors saying so (never showing the password); the password-file form, encoded
//! special characters and TLS work; expired tokens are renewed (reads, writes, watches, leases);
//! a user given to an etcd without authentication works, also once it is turned on.

use std::time::Duration;
use tern_store::testing::{add_etcd_user, enable_etcd_auth, EtcdServer};
use tern_store::{Dsn, Store, StoreError, WatchEvent};

const PASSWORD: &str = "tern-secret";

/// A plain etcd started with `flags`, with user `tern` (readwrite on every key) and, if `enable`,
/// authentication turned on.
async fn start(flags: &'static [&'static str], enable: bool) -> EtcdServer {
    let server = tokio::task::spawn_blocking(move || EtcdServer::start_with_flags(flags))
        .await
        .unwrap()
        .expect("start etcd");
    add_etcd_user(&server, "tern", PASSWORD, b"").await.expect("add user tern");
    if enable {
        enable_etcd_auth(&server).await.expect("enable auth");
    }
    server
}

async fn open(dsn: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    tokio::time::timeout(Duration::from_secs(30), tern_store::open(dsn)).await.expect("open answers in time")
}

/// Opens `dsn`, expects a refusal; returns its message, checked not to show `secret`.
async fn refused(dsn: &str, secret: &str) -> String {
    let err = open(dsn).await.err().unwrap_or_else(|| panic!("{dsn} opened"));
    let text = err.to_string();
    eprintln!("{text}");
    assert!(!text.contains(secret), "shows the password: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_with_its_password_reads_and_writes() {
    let server = start(&[], true).await;
    let store = open(&format!("etcd://tern:{PASSWORD}@{}", server.endpoint())).await.unwrap();
    let revision = store.put("/auth/a", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.get("/auth/a").await.unwrap().unwrap().mod_revision, revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_or_unknown_user_is_refused_naming_the_user() {
    let server = start(&[], true).await;
    let text =
        refused(&format!("etcd://tern:not-the-password@{}", server.endpoint()), "not-the-password").await;
    assert!(text.contains("etcd refused user \"tern\"") && text.contains("wrong password"), "{text}");
    assert!(text.contains(&server.endpoint()), "names the endpoint: {text}");
    let text = refused(&format!("etcd://nobody:{PASSWORD}@{}", server.endpoint()), PASSWORD).await;
    assert!(text.contains("etcd refused user \"nobody\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_is_refused_saying_etcd_requires_one() {
    let server = start(&[], true).await;
    let text = refused(&format!("etcd://{}", server.endpoint()), PASSWORD).await;
    assert!(text.contains("etcd requires a user"), "{text}");
    assert!(text.contains("etcd://USER:PASSWORD@HOST:PORT"), "says how to give one: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_access_to_the_keys_is_refused_saying_so() {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().expect("start etcd");
    add_etcd_user(&server, "narrow", PASSWORD, b"/elsewhere/").await.unwrap();
    enable_etcd_auth(&server).await.unwrap();
    let text = refused(&format!("etcd://narrow:{PASSWORD}@{}", server.endpoint()), PASSWORD).await;
    assert!(text.contains("etcd denied user \"narrow\"") && text.contains("readwrite"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_file_form_works() {
    let server = start(&[], true).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let dsn = format!("etcd://{}?user=tern&password-file={}", server.endpoint(), file.display());
    let store = open(&dsn).await.unwrap();
    store.put("/auth/file", b"1".to_vec(), None).await.unwrap();
    // The user before '@', the password in the file.
    let dsn = format!("etcd://tern@{}?password-file={}", server.endpoint(), file.display());
    assert_eq!(open(&dsn).await.unwrap().get("/auth/file").await.unwrap().unwrap().value, b"1");
    // A wrong password in the file is refused as one in the DSN is.
    std::fs::write(&file, "not-the-password\n").unwrap();
    let text = refused(
        &format!("etcd://{}?user=tern&password-file={}", server.endpoint(), file.display()),
        "not-the",
    )
    .await;
    assert!(text.contains("etcd refused user \"tern\""), "{text}");
    // A missing file is an error naming it.
    let missing = dir.path().join("missing");
    let text = refused(
        &format!("etcd://{}?user=tern&password-file={}", server.endpoint(), missing.display()),
        "no-secret-here",
    )
    .await;
    assert!(text.contains(&missing.display().to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_characters_in_user_and_password_are_percent_decoded() {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().expect("start etcd");
    let (user, password) = ("ops@tern", "p@ss:w/rd?%é #&=");
    add_etcd_user(&server, user, password, b"").await.unwrap();
    enable_etcd_auth(&server).await.unwrap();
    let dsn = format!("etcd://ops%40tern:p%40ss%3Aw%2Frd%3F%25%C3%A9%20%23%26%3D@{}", server.endpoint());
    let store = open(&dsn).await.unwrap();
    store.put("/auth/special", b"1".to_vec(), None).await.unwrap();
}

#[tokio::test]
async fn display_and_debug_hide_the_password() {
    let dsn: Dsn = format!("etcd://tern:{PASSWORD}@127.0.0.1:2379,127.0.0.2:2379").parse().unwrap();
    assert_eq!(dsn.to_string(), "etcd://tern:***@127.0.0.1:2379,127.0.0.2:2379");
    assert!(!format!("{dsn:?}").contains(PASSWORD), "{dsn:?}");
    let dsn: Dsn = format!("etcds://tern:{PASSWORD}@h:1?ca=/ca.pem").parse().unwrap();
    assert_eq!(dsn.to_string(), "etcds://tern:***@h:1?ca=/ca.pem");
    // A DSN printed and parsed again keeps the user but not the password: open the parsed one.
    let err = format!("etcd://tern:{PASSWORD}@h:99999").parse::<Dsn>().unwrap_err().to_string();
    assert!(err.contains("tern:***@h:99999") && !err.contains(PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed() {
    // Tokens expire after 1 s unused.
    let server = start(&["--auth-token-ttl", "1"], true).await;
    let store = open(&format!("etcd://tern:{PASSWORD}@{}", server.endpoint())).await.unwrap();
    let lease = store.grant_lease(60).await.unwrap();
    let mut early = store.watch("/auth/", 0).await.unwrap();
    let idle = Duration::from_millis(2500);
    // A new watch, a read, a write and a lease keep-alive, each the first request after the
    // token expired.
    tokio::time::sleep(idle).await;
    let mut late = store.watch("/auth/", 0).await.unwrap();
    tokio::time::sleep(idle).await;
    assert_eq!(store.get("/auth/none").await.unwrap(), None);
    tokio::time::sleep(idle).await;
    let revision = store.put("/auth/w", b"1".to_vec(), Some(lease)).await.unwrap();
    tokio::time::sleep(idle).await;
    store.keep_alive(lease).await.unwrap();
    for watch in [&mut early, &mut late] {
        let event =
            tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(&event, WatchEvent::Put(kv) if kv.key == "/auth/w"), "{event:?}");
    }
    tokio::time::sleep(idle).await;
    store.update("/auth/w", b"2".to_vec(), revision).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), late.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&event, WatchEvent::Put(kv) if kv.value == b"2"), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_given_before_auth_is_enabled_keeps_working_after() {
    let server = start(&[], false).await;
    let store = open(&format!("etcd://tern:{PASSWORD}@{}", server.endpoint())).await.unwrap();
    store.put("/auth/before", b"1".to_vec(), None).await.unwrap();
    enable_etcd_auth(&server).await.unwrap();
    store.put("/auth/after", b"2".to_vec(), None).await.unwrap();
    assert_eq!(store.get("/auth/before").await.unwrap().unwrap().value, b"1");
    let mut watch = store.watch("/auth/", 1).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&event, WatchEvent::Put(kv) if kv.key == "/auth/before"), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_over_tls() {
    let server =
        tokio::task::spawn_blocking(EtcdServer::start_tls).await.unwrap().expect("start etcd with TLS");
    add_etcd_user(&server, "tern", PASSWORD, b"").await.unwrap();
    enable_etcd_auth(&server).await.unwrap();
    let tls_dsn = server.dsn();
    let (scheme, rest) = tls_dsn.split_once("://").unwrap();
    let store = open(&format!("{scheme}://tern:{PASSWORD}@{rest}")).await.unwrap();
    store.put("/auth/tls", b"1".to_vec(), None).await.unwrap();
    let text = refused(&format!("{scheme}://tern:not-the-password@{rest}"), "not-the-password").await;
    assert!(text.contains("etcd refused user \"tern\""), "{text}");
}
