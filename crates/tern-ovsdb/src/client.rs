//! The async shell: [`Client`] connects to `unix:PATH` or `tcp:HOST:PORT`; one background task
//! owns the socket, drives the sans-IO [`Session`], matches replies to requests, answers `echo`
//! and hands monitor `update`s to their subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::OvsdbError;
use crate::protocol::{
    monitor_params, transact_params, transact_results, Incoming, MonitorTable, Op, OpResult, Session,
    TableUpdates,
};

/// How long [`Client::connect`] waits for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The updates of one monitor, in server order. It ends when the connection closes; dropping it
/// cancels the monitor on the server (at its next update).
pub type Updates = mpsc::UnboundedReceiver<TableUpdates>;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(String),
    Tcp(String),
}

impl Target {
    /// Parses `unix:PATH` or `tcp:HOST:PORT`.
    pub fn parse(target: &str) -> Result<Target, OvsdbError> {
        let bad = || OvsdbError::BadTarget { target: target.to_string() };
        if let Some(path) = target.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            Ok(Target::Unix(path.to_string()))
        } else if let Some(addr) = target.strip_prefix("tcp:") {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    // "tcp:[::1]:6640" -> "[::1]:6640" is what tokio expects.
                    Ok(Target::Tcp(addr.to_string()))
                }
                _ => Err(bad()),
            }
        } else {
            Err(bad())
        }
    }
}

type Reply = oneshot::Sender<Result<Value, OvsdbError>>;

enum Command {
    Request {
        method: String,
        params: Value,
        reply: Reply,
        monitor: Option<(Value, mpsc::UnboundedSender<TableUpdates>)>,
    },
}

struct Inner {
    target: String,
    commands: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<String>>,
    next_monitor: AtomicU64,
}

/// A connection to one OVSDB server. Cheap to clone; the connection closes when the last clone
/// is dropped (or the server goes away: every call then fails with
/// [`OvsdbError::Disconnected`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.inner.target).finish()
    }
}

impl Client {
    /// Connects to `unix:PATH` or `tcp:HOST:PORT` and starts the connection task.
    pub async fn connect(target: &str) -> Result<Client, OvsdbError> {
        let connect_err = |source| OvsdbError::Connect { target: target.to_string(), source };
        match Target::parse(target)? {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(&path).await.map_err(connect_err)?;
                let (r, w) = stream.into_split();
                Ok(Self::start(target, r, w))
            }
            Target::Tcp(addr) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
                    .await
                    .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
                    .map_err(connect_err)?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                Ok(Self::start(target, r, w))
            }
        }
    }

    /// Runs the protocol over any byte stream (the halves of a socket, an in-memory pipe).
    pub fn start<R, W>(target: &str, reader: R, writer: W) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(None);
        let target = target.to_string();
        tokio::spawn(drive(target.clone(), reader, writer, command_rx, closed_tx));
        Client { inner: Arc::new(Inner { target, commands, closed, next_monitor: AtomicU64::new(1) }) }
    }

    /// The target this client connected to.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Waits until the connection closes; returns why.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "connection task ended".to_string(),
        };
        reason
    }

    fn disconnected(&self, method: &str) -> OvsdbError {
        OvsdbError::Disconnected { target: self.inner.target.clone(), method: method.to_string() }
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        monitor: Option<(Value, mpsc::UnboundedSender<TableUpdates>)>,
    ) -> Result<Value, OvsdbError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request { method: method.to_string(), params, reply, monitor };
        self.inner.commands.send(cmd).map_err(|_| self.disconnected(method))?;
        rx.await.map_err(|_| self.disconnected(method))?
    }

    /// Any JSON-RPC method; a JSON-RPC `error` becomes [`OvsdbError::Rpc`].
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, OvsdbError> {
        self.call(method, params, None).await
    }

    /// Runs `ops` as one transaction on `db`. A failed op (or commit) becomes
    /// [`OvsdbError::OpFailed`] with its index, error and details.
    pub async fn transact(&self, db: &str, ops: Vec<Op>) -> Result<Vec<OpResult>, OvsdbError> {
        let result = self.call("transact", transact_params(db, &ops), None).await?;
        transact_results(db, &ops, &result)
    }

    /// Monitors `tables` of `db`: the initial contents, then every change in order.
    pub async fn monitor(
        &self,
        db: &str,
        tables: &[MonitorTable],
    ) -> Result<(TableUpdates, Updates), OvsdbError> {
        let id = json!(format!("tern-{}", self.inner.next_monitor.fetch_add(1, Ordering::Relaxed)));
        let (tx, rx) = mpsc::unbounded_channel();
        let params = monitor_params(db, &id, tables);
        let initial = self.call("monitor", params, Some((id, tx))).await?;
        Ok((TableUpdates::from_json(&initial)?, rx))
    }

    /// Round trip to the server.
    pub async fn echo(&self) -> Result<(), OvsdbError> {
        let payload = json!(["tern"]);
        let got = self.call("echo", payload.clone(), None).await?;
        if got != payload {
            return Err(OvsdbError::protocol("echo", format!("server echoed {got}, sent {payload}")));
        }
        Ok(())
    }

    /// The databases the server holds.
    pub async fn list_dbs(&self) -> Result<Vec<String>, OvsdbError> {
        let v = self.call("list_dbs", json!([]), None).await?;
        let Value::Array(dbs) = &v else {
            return Err(OvsdbError::protocol("list_dbs result", format!("not an array: {v}")));
        };
        Ok(dbs.iter().filter_map(|d| d.as_str().map(str::to_string)).collect())
    }

    /// The schema of `db`, as JSON.
    pub async fn get_schema(&self, db: &str) -> Result<Value, OvsdbError> {
        self.call("get_schema", json!([db]), None).await
    }
}

struct Pending {
    method: String,
    reply: Option<Reply>,
    monitor_id: Option<Value>,
}

/// The connection task.
async fn drive<R, W>(
    target: String,
    mut reader: R,
    writer: W,
    mut commands: mpsc::UnboundedReceiver<Command>,
    closed: watch::Sender<Option<String>>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(&target);
    // Writes go through their own task so a server that is busy writing to us never waits on a
    // write of ours while we wait on it.
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut write_task = tokio::spawn(write_loop(writer, out_rx));
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut monitors: HashMap<String, mpsc::UnboundedSender<TableUpdates>> = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];

    let reason: String = 'conn: loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(Command::Request { method, params, reply, monitor }) = cmd else {
                    break 'conn "client dropped".to_string();
                };
                let (id, bytes) = session.request(&method, params);
                let monitor_id = monitor.map(|(mid, sink)| {
                    monitors.insert(mid.to_string(), sink);
                    mid
                });
                pending.insert(id, Pending { method, reply: Some(reply), monitor_id });
                if out_tx.send(bytes).is_err() {
                    break 'conn "writer stopped".to_string();
                }
            }
            res = &mut write_task => {
                break 'conn match res {
                    Ok(Err(e)) => OvsdbError::Io { target: target.clone(), source: e }.to_string(),
                    _ => "writer stopped".to_string(),
                };
            }
            n = reader.read(&mut buf) => {
                let n = match n {
                    Ok(0) => break 'conn "connection closed by server".to_string(),
                    Ok(n) => n,
                    Err(e) => break 'conn OvsdbError::Io { target: target.clone(), source: e }.to_string(),
                };
                session.receive(&buf[..n]);
                loop {
                    match session.poll() {
                        Ok(None) => break,
                        Ok(Some(msg)) => {
                            if let Some(bytes) = dispatch(msg, &mut session, &mut pending, &mut monitors) {
                                let _ = out_tx.send(bytes);
                            }
                        }
                        Err(e) => break 'conn e.to_string(),
                    }
                }
                while let Some(bytes) = session.take_outgoing() {
                    let _ = out_tx.send(bytes);
                }
            }
        }
    };

    tracing::debug!(%target, %reason, "OVSDB connection closed");
    write_task.abort();
    for (_, p) in pending.drain() {
        if let Some(reply) = p.reply {
            let _ = reply.send(Err(OvsdbError::Disconnected { target: target.clone(), method: p.method }));
        }
    }
    monitors.clear();
    let _ = closed.send(Some(reason));
    // Calls made after this point fail because the receiver is gone.
    commands.close();
    while let Ok(Command::Request { method, reply, .. }) = commands.try_recv() {
        let _ = reply.send(Err(OvsdbError::Disconnected { target: target.clone(), method }));
    }
}

/// Handles one message; returns bytes to write (a `monitor_cancel` for an abandoned monitor).
fn dispatch(
    msg: Incoming,
    session: &mut Session,
    pending: &mut HashMap<u64, Pending>,
    monitors: &mut HashMap<String, mpsc::UnboundedSender<TableUpdates>>,
) -> Option<Vec<u8>> {
    match msg {
        Incoming::Reply { id, result } => {
            let Some(p) = pending.remove(&id) else {
                tracing::debug!(id, "reply to an unknown request");
                return None;
            };
            if result.is_err() {
                if let Some(mid) = &p.monitor_id {
                    monitors.remove(&mid.to_string());
                }
            }
            if let Some(reply) = p.reply {
                let _ = reply.send(result.map_err(|error| OvsdbError::Rpc { method: p.method, error }));
            }
            None
        }
        Incoming::Update { monitor_id, updates } => {
            let key = monitor_id.to_string();
            let sink = monitors.get(&key)?;
            if sink.send(updates).is_ok() {
                return None;
            }
            // Nobody listens any more: cancel it on the server.
            monitors.remove(&key);
            let (id, bytes) = session.request("monitor_cancel", json!([monitor_id]));
            pending.insert(id, Pending { method: "monitor_cancel".into(), reply: None, monitor_id: None });
            Some(bytes)
        }
        Incoming::Notification { method, .. } => {
            tracing::debug!(%method, "ignoring OVSDB notification");
            None
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(bytes) = rx.recv().await {
        writer.write_all(&bytes).await?;
        writer.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[test]
    fn targets() {
        assert_eq!(Target::parse("unix:/a/b.sock").unwrap(), Target::Unix("/a/b.sock".into()));
        assert_eq!(Target::parse("tcp:127.0.0.1:6640").unwrap(), Target::Tcp("127.0.0.1:6640".into()));
        assert_eq!(Target::parse("tcp:[::1]:6640").unwrap(), Target::Tcp("[::1]:6640".into()));
        for bad in ["unix:", "tcp:1.2.3.4", "tcp::80", "ssl:x:1", "/a/b", "tcp:h:99999"] {
            assert!(matches!(Target::parse(bad), Err(OvsdbError::BadTarget { .. })), "{bad}");
        }
    }

    /// A fake server on an in-memory pipe: it sends an echo request first, and answers every
    /// request (split into tiny writes) once it has seen our echo reply.
    #[tokio::test]
    async fn client_over_a_pipe() {
        let (client_side, server_side) = tokio::io::duplex(64);
        let (cr, cw) = tokio::io::split(client_side);
        let client = Client::start("pipe", cr, cw);
        let (sr, mut sw) = tokio::io::split(server_side);
        let server = tokio::spawn(async move {
            sw.write_all(br#"{"method":"echo","params":["ping"],"id":"e1"}"#).await.unwrap();
            // Our client writes messages back to back too; newline-free, so read by framer.
            let mut framer = crate::framing::JsonFramer::new();
            let mut r = BufReader::new(sr);
            let mut seen = Vec::new();
            loop {
                let buf = r.fill_buf().await.unwrap();
                if buf.is_empty() {
                    break;
                }
                let n = buf.len();
                framer.push(buf);
                r.consume(n);
                while let Some(m) = framer.next_message().unwrap() {
                    let v: Value = serde_json::from_slice(&m).unwrap();
                    seen.push(v.clone());
                    if v["method"] == "list_dbs" {
                        let reply =
                            json!({"id": v["id"], "result": ["Open_vSwitch", "_Server"], "error": null});
                        for b in serde_json::to_vec(&reply).unwrap() {
                            sw.write_all(&[b]).await.unwrap();
                        }
                    } else if v["method"] == "transact" {
                        let reply = json!({"id": v["id"], "result": [{"count": 1}, {"error": "timed out"}], "error": null});
                        sw.write_all(&serde_json::to_vec(&reply).unwrap()).await.unwrap();
                    } else if v["method"] == "get_schema" {
                        let reply =
                            json!({"id": v["id"], "result": null, "error": {"error": "unknown database"}});
                        sw.write_all(&serde_json::to_vec(&reply).unwrap()).await.unwrap();
                    }
                }
            }
            seen
        });
        assert_eq!(client.list_dbs().await.unwrap(), vec!["Open_vSwitch", "_Server"]);
        let err = client
            .transact(
                "db",
                vec![
                    Op::delete("T", vec![]),
                    Op::wait("T", vec![], &[], crate::WaitUntil::Equal, vec![], Some(0)),
                ],
            )
            .await
            .unwrap_err();
        assert!(matches!(&err, OvsdbError::OpFailed { index: 1, op, .. } if op == "wait"), "{err}");
        let err = client.get_schema("nope").await.unwrap_err();
        assert!(matches!(&err, OvsdbError::Rpc { method, .. } if method == "get_schema"), "{err}");
        drop(client);
        let seen = server.await.unwrap();
        assert!(seen.contains(&json!({"id": "e1", "result": ["ping"], "error": null})), "{seen:?}");
    }

    #[tokio::test]
    async fn pending_calls_fail_when_the_server_goes_away() {
        let (client_side, server_side) = tokio::io::duplex(1024);
        let (cr, cw) = tokio::io::split(client_side);
        let client = Client::start("pipe", cr, cw);
        let c2 = client.clone();
        let call = tokio::spawn(async move { c2.list_dbs().await });
        tokio::task::yield_now().await;
        drop(server_side);
        let err = call.await.unwrap().unwrap_err();
        assert!(err.is_disconnect(), "{err}");
        assert!(!client.closed().await.is_empty());
        assert!(matches!(client.echo().await, Err(OvsdbError::Disconnected { .. })));
    }
}
