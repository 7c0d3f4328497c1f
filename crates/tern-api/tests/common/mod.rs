//! Test support: the API served in-process on 127.0.0.1:0 over real HTTP, and a small client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tern_api::{router, ApiState};
use tern_store::nb::Nb;
use tern_store::LocalStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub nb: Nb,
    client: reqwest::Client,
    token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Waits until `addr` accepts connections (retrying, bounded by a timeout; no fixed sleeps).
pub async fn wait_ready(addr: SocketAddr) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("server did not start accepting connections");
}

pub fn memory_nb() -> Nb {
    Nb::new(Arc::new(LocalStore::memory().expect("memory store")))
}

pub async fn start() -> Server {
    start_with(memory_nb(), None).await
}

/// The API on `nb`, the store readied first as `tern server` does (`tern_api::prepare_store`).
pub async fn start_with(nb: Nb, token: Option<&str>) -> Server {
    tern_api::prepare_store(&nb).await.expect("prepare the store");
    serve_as_is(nb, token).await
}

/// The API on `nb` with the store as it is (a store from before the port index stays unindexed).
pub async fn serve_as_is(nb: Nb, token: Option<&str>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let auth = token.map_or(tern_api::Auth::None, |t| tern_api::Auth::Token(t.to_string()));
    let app = router(ApiState { auth, ..ApiState::new(nb.clone()) });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    wait_ready(addr).await;
    Server {
        addr,
        base: format!("http://{addr}"),
        nb,
        client: reqwest::Client::new(),
        token: token.map(str::to_string),
        stop: Some(tx),
        task: Some(task),
    }
}

impl Server {
    /// Stops the server and waits until it has finished (its NB handle is then dropped too).
    pub async fn stop(mut self) {
        drop(std::mem::replace(&mut self.client, reqwest::Client::new()));
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("server stops").expect("task");
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, body.as_deref(), &[]).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs and expects 201; returns the created object (inside its envelope key).
    pub async fn create(&self, collection: &str, key: &str, attrs: Value) -> Value {
        let (s, v) = self.post(&format!("/v2.0/{collection}"), json!({ key: attrs })).await;
        assert_eq!(s, 201, "create {collection}: {v}");
        v[key].clone()
    }

    pub async fn network(&self, name: &str) -> Value {
        self.create("networks", "network", json!({"name": name})).await
    }

    pub async fn external_network(&self, name: &str) -> Value {
        self.create("networks", "network", json!({"name": name, "router:external": true})).await
    }

    pub async fn subnet(&self, network: &Value, cidr: &str) -> Value {
        self.create("subnets", "subnet", json!({"network_id": network["id"], "cidr": cidr, "ip_version": if cidr.contains(':') { 6 } else { 4 }}))
            .await
    }

    pub async fn port(&self, network: &Value, extra: Value) -> Value {
        let mut attrs = json!({"network_id": network["id"]});
        if let (Some(a), Some(e)) = (attrs.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                a.insert(k.clone(), v.clone());
            }
        }
        self.create("ports", "port", attrs).await
    }
}

/// The NeutronError type of an error body.
pub fn err_type(v: &Value) -> &str {
    v["NeutronError"]["type"].as_str().unwrap_or("<no NeutronError>")
}

pub fn err_message(v: &Value) -> &str {
    v["NeutronError"]["message"].as_str().unwrap_or("<no NeutronError>")
}

/// Asserts an error status and that the message mentions every one of `words`.
pub fn assert_error(got: &(u16, Value), status: u16, words: &[&str]) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(v["NeutronError"]["detail"], "", "{v}");
    let msg = err_message(v);
    for w in words {
        assert!(msg.contains(w), "message {msg:?} should mention {w:?}");
    }
}

pub fn ids(v: &Value, collection: &str) -> Vec<String> {
    v[collection]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A server on a fresh store of the kind named ("memory" or "redb"), and what must live as long as it.
pub async fn server_on(store: &str) -> (Arc<Server>, Option<tempfile::TempDir>) {
    match store {
        "memory" => (Arc::new(start().await), None),
        "redb" => {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalStore::open_redb(dir.path().join("nb.redb")).unwrap();
            (Arc::new(start_with(Nb::new(Arc::new(store)), None).await), Some(dir))
        }
        other => panic!("unknown store {other}"),
    }
}
