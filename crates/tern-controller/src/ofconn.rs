//! The OpenFlow connection to one bridge: the async shell around `tern-openflow`'s sans-IO codec.
//!
//! [`OfConn::connect`] does the handshake (hello with version negotiation, features, packet-in
//! config); a reader task matches replies to requests by xid, answers echoes and streams the
//! switch's asynchronous messages (packet-ins, port status) out as [`OfEvent`]s; a writer task
//! sends whole batches with one write. [`Switch`] keeps a connection up, reconnecting with backoff.
//!
//! Requests that have no reply of their own (flow mods, bundle adds) are resolved by the next reply
//! the switch sends: OpenFlow switches process a connection's messages in order, so a reply to a
//! later request means the earlier ones succeeded unless an error carrying their xid came first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_openflow::{
    self as of, BundleAdd, BundleControl, BundleCtrlType, BundleFlags, ErrorMsg, FlowMod, FlowStats,
    FlowStatsRequest, Message, MultipartReply, MultipartReplyBody, MultipartRequest, SwitchConfig,
    SwitchFeatures,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

/// OpenFlow versions tern offers in its hello. Both sides settle on the highest version both
/// speak, so offering 1.5 would select it with OVS; tern stops at 1.4, which has native bundles and
/// reads flow statistics in the 1.3 layout (1.5's OXS statistics add nothing tern needs). The codec
/// itself speaks 1.3 to 1.5.
const OUR_VERSIONS: [u8; 2] = [of::OFP13, of::OFP14];
/// How long a request may wait for its reply before the connection is considered stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest message the reader accepts (OpenFlow lengths are 16-bit; this is just a bound).
const READ_CHUNK: usize = 64 * 1024;

/// Where a bridge's OpenFlow endpoint is: `unix:PATH` (e.g. `<rundir>/br-int.mgmt`) or `tcp:HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl FromStr for Target {
    type Err = OfError;

    fn from_str(s: &str) -> Result<Self, OfError> {
        if let Some(path) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Ok(Target::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:").filter(|a| a.rsplit_once(':').is_some()) {
            Ok(Target::Tcp(addr.to_owned()))
        } else {
            Err(OfError::BadTarget(s.to_owned()))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// What can go wrong talking to a switch.
#[derive(Debug, thiserror::Error)]
pub enum OfError {
    #[error("invalid OpenFlow target {0:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadTarget(String),
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: std::io::Error },
    #[error("handshake with {target} failed: {reason}")]
    Handshake { target: String, reason: String },
    #[error("connection to the switch is closed")]
    Closed,
    #[error("the switch sent an undecodable message: {0}")]
    Decode(String),
    #[error("the switch refused {request}: {error}")]
    Refused { request: String, error: ErrorMsg },
    #[error("no reply from the switch to {0} within {REPLY_TIMEOUT:?}")]
    Timeout(String),
    #[error("unexpected reply to {request}: {reply}")]
    Unexpected { request: String, reply: String },
}

/// Asynchronous messages from the switch, and the connection's own news.
#[derive(Debug)]
pub enum OfEvent {
    Connected {
        version: u8,
        datapath_id: u64,
    },
    /// The switch sent a message no request was waiting for (packet-in, packet-in2, port status...).
    Message(Box<Message>),
    Disconnected {
        reason: String,
    },
}

/// Flow changes refused as one bundle: nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub struct BundleError {
    /// The flow changes the switch refused, by index in the bundle, with their text.
    pub refused: Vec<(usize, String, ErrorMsg)>,
    /// The commit's own error, if it failed (OVS: `OFPBFC_MSG_FAILED` when a change was refused).
    pub commit: Option<ErrorMsg>,
    /// A transport failure, if that is why the bundle failed.
    pub transport: Option<String>,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bundle refused, nothing applied")?;
        for (i, flow, error) in &self.refused {
            write!(f, "; flow change #{i} `{flow}`: {error}")?;
        }
        if let Some(e) = &self.commit {
            write!(f, "; commit: {e}")?;
        }
        if let Some(t) = &self.transport {
            write!(f, "; {t}")?;
        }
        Ok(())
    }
}

/// What a request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Exactly one reply message with the same xid.
    Reply,
    /// Multipart replies with the same xid until one without the MORE flag.
    Multipart,
    /// Nothing of its own: done when a later request is answered, failed by an error with its xid.
    Nothing,
}

enum Outcome {
    Reply(Message),
    Parts(Vec<Message>),
    Done,
}

struct Waiter {
    expect: Expect,
    parts: Vec<Message>,
    tx: oneshot::Sender<Result<Outcome, ErrorMsg>>,
}

type Pending = Arc<Mutex<BTreeMap<u32, Waiter>>>;

/// Where a request's outcome arrives: its reply, or the switch's error for it.
type Answer = oneshot::Receiver<Result<Outcome, ErrorMsg>>;

/// A batch to write: its bytes and the xids it registers.
struct Batch {
    bytes: Vec<u8>,
}

/// A live, handshaken OpenFlow connection. Cheap to clone.
#[derive(Clone)]
pub struct OfConn {
    inner: Arc<ConnInner>,
}

struct ConnInner {
    target: String,
    version: u8,
    features: SwitchFeatures,
    next_xid: AtomicU32,
    next_bundle: AtomicU32,
    pending: Pending,
    writer: mpsc::UnboundedSender<Batch>,
    closed: watch::Receiver<Option<String>>,
}

// === impl OfConn ===

impl OfConn {
    /// Connects and handshakes. Asynchronous messages from the switch go to `events`.
    pub async fn connect(target: &Target, events: mpsc::UnboundedSender<OfEvent>) -> Result<OfConn, OfError> {
        let name = target.to_string();
        match target {
            Target::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| OfError::Connect { target: name.clone(), source })?;
                let (r, w) = s.into_split();
                Self::start(name, r, w, events).await
            }
            Target::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| OfError::Connect { target: name.clone(), source })?;
                s.set_nodelay(true).ok();
                let (r, w) = s.into_split();
                Self::start(name, r, w, events).await
            }
        }
    }

    async fn start<R, W>(
        target: String,
        mut r: R,
        mut w: W,
        events: mpsc::UnboundedSender<OfEvent>,
    ) -> Result<OfConn, OfError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let handshake = |reason: String| OfError::Handshake { target: target.clone(), reason };
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let io = |e: std::io::Error| handshake(e.to_string());
        // Hello, advertising 1.3 to 1.5; use the highest version both sides speak.
        w.write_all(&of::encode(of::OFP14, 1, &Message::Hello { versions: OUR_VERSIONS.to_vec() }))
            .await
            .map_err(io)?;
        let (header, hello) = read_message(&mut r, &mut buf).await.map_err(|e| handshake(e.to_string()))?;
        let theirs = match hello {
            Message::Hello { versions } if !versions.is_empty() => versions,
            Message::Hello { .. } => vec![header.version],
            other => return Err(handshake(format!("expected hello, got {other:?}"))),
        };
        // A bitmap lists what the switch speaks; a bare hello means "up to this version".
        let speaks = |v: u8| if theirs.len() == 1 { v <= theirs[0] } else { theirs.contains(&v) };
        let version = OUR_VERSIONS
            .iter()
            .rev()
            .copied()
            .find(|v| speaks(*v))
            .ok_or_else(|| handshake(format!("no common OpenFlow version (switch offers {theirs:?})")))?;
        w.write_all(&of::encode(version, 2, &Message::FeaturesRequest)).await.map_err(io)?;
        let features = loop {
            match read_message(&mut r, &mut buf).await.map_err(|e| handshake(e.to_string()))? {
                (_, Message::FeaturesReply(f)) => break f,
                (h, Message::EchoRequest(data)) => {
                    w.write_all(&of::encode(version, h.xid, &Message::EchoReply(data))).await.map_err(io)?
                }
                (_, Message::Error(e)) => return Err(handshake(format!("features request refused: {e}"))),
                _ => {} // anything else before features is not ours to handle
            }
        };
        // Ask for packet-ins of the whole packet (service connections get none until they do).
        w.write_all(&of::encode(
            version,
            3,
            &Message::SetConfig(SwitchConfig { flags: 0, miss_send_len: 0xffff }),
        ))
        .await
        .map_err(io)?;

        let pending: Pending = Arc::default();
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let closed_tx = Arc::new(closed_tx);
        let _ = events.send(OfEvent::Connected { version, datapath_id: features.datapath_id });
        tokio::spawn(write_loop(w, writer_rx, closed_tx.clone()));
        tokio::spawn(read_loop(r, buf, version, pending.clone(), writer_tx.clone(), events, closed_tx));
        tracing::info!(%target, version = version_name(version), datapath_id = format_args!("{:016x}", features.datapath_id), "OpenFlow connected");
        Ok(OfConn {
            inner: Arc::new(ConnInner {
                target,
                version,
                features,
                next_xid: AtomicU32::new(16),
                next_bundle: AtomicU32::new(1),
                pending,
                writer: writer_tx,
                closed: closed_rx,
            }),
        })
    }

    /// The negotiated OpenFlow version (wire value: 4 = 1.3, 5 = 1.4, 6 = 1.5).
    pub fn version(&self) -> u8 {
        self.inner.version
    }

    pub fn features(&self) -> &SwitchFeatures {
        &self.inner.features
    }

    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Resolves when the connection is gone, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.clone();
        loop {
            if let Some(reason) = rx.borrow().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "connection dropped".into();
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    fn xid(&self) -> u32 {
        self.inner.next_xid.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends messages in one write; returns one receiver per message.
    fn submit(&self, msgs: Vec<(Message, Expect)>) -> Result<Vec<(u32, Answer)>, OfError> {
        if self.is_closed() {
            return Err(OfError::Closed);
        }
        let mut bytes = Vec::new();
        let mut receivers = Vec::with_capacity(msgs.len());
        {
            let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (msg, expect) in msgs {
                let xid = self.xid();
                bytes.extend_from_slice(&of::encode(self.inner.version, xid, &msg));
                let (tx, rx) = oneshot::channel();
                pending.insert(xid, Waiter { expect, parts: Vec::new(), tx });
                receivers.push((xid, rx));
            }
        }
        self.inner.writer.send(Batch { bytes }).map_err(|_| OfError::Closed)?;
        Ok(receivers)
    }

    async fn wait(rx: oneshot::Receiver<Result<Outcome, ErrorMsg>>, what: &str) -> Result<Outcome, OfError> {
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Err(_) => Err(OfError::Timeout(what.to_owned())),
            Ok(Err(_)) => Err(OfError::Closed),
            Ok(Ok(Err(error))) => Err(OfError::Refused { request: what.to_owned(), error }),
            Ok(Ok(Ok(outcome))) => Ok(outcome),
        }
    }

    /// Sends a request that has exactly one reply, and returns the reply.
    pub async fn request(&self, msg: Message) -> Result<Message, OfError> {
        let what = message_name(&msg);
        let (_, rx) = self.submit(vec![(msg, Expect::Reply)])?.pop().expect("one message");
        match Self::wait(rx, &what).await? {
            Outcome::Reply(m) => Ok(m),
            _ => Err(OfError::Unexpected { request: what, reply: "no message".into() }),
        }
    }

    /// Sends a multipart request and returns every part of the reply.
    pub async fn request_multipart(&self, req: MultipartRequest) -> Result<Vec<MultipartReply>, OfError> {
        let msg = Message::MultipartRequest(req);
        let what = message_name(&msg);
        let (_, rx) = self.submit(vec![(msg, Expect::Multipart)])?.pop().expect("one message");
        match Self::wait(rx, &what).await? {
            Outcome::Parts(parts) => parts
                .into_iter()
                .map(|m| match m {
                    Message::MultipartReply(r) => Ok(r),
                    other => Err(OfError::Unexpected { request: what.clone(), reply: message_name(&other) }),
                })
                .collect(),
            _ => Err(OfError::Unexpected { request: what, reply: "a single message".into() }),
        }
    }

    /// Sends a packet out through the switch (no reply; a refusal is only logged by the
    /// connection, as the switch answers it asynchronously).
    pub fn packet_out(&self, packet: tern_openflow::PacketOut) -> Result<(), OfError> {
        self.submit(vec![(Message::PacketOut(packet), Expect::Nothing)]).map(|_| ())
    }

    /// Waits until the switch has processed everything sent before.
    pub async fn barrier(&self) -> Result<(), OfError> {
        match self.request(Message::BarrierRequest).await? {
            Message::BarrierReply => Ok(()),
            other => Err(OfError::Unexpected { request: "barrier".into(), reply: message_name(&other) }),
        }
    }

    /// Applies flow changes outside any bundle (each on its own), then a barrier. Errors name the
    /// first refused change; the others may have been applied.
    pub async fn send_flow_mods(&self, mods: Vec<FlowMod>) -> Result<(), OfError> {
        let texts: Vec<String> = mods.iter().map(|m| m.flow.to_string()).collect();
        let mut msgs: Vec<(Message, Expect)> =
            mods.into_iter().map(|m| (Message::FlowMod(m), Expect::Nothing)).collect();
        msgs.push((Message::BarrierRequest, Expect::Reply));
        let mut rxs = self.submit(msgs)?;
        let (_, barrier) = rxs.pop().expect("barrier");
        Self::wait(barrier, "barrier").await?;
        for (i, (_, rx)) in rxs.into_iter().enumerate() {
            Self::wait(rx, &format!("flow_mod `{}`", texts[i])).await?;
        }
        Ok(())
    }

    /// Applies flow changes as one atomic, ordered bundle: all of them or, if the switch refuses
    /// any, none. The error names each refused change.
    pub async fn install_bundle(&self, mods: Vec<FlowMod>) -> Result<(), BundleError> {
        let transport =
            |e: OfError| BundleError { refused: vec![], commit: None, transport: Some(e.to_string()) };
        let bundle_id = self.inner.next_bundle.fetch_add(1, Ordering::Relaxed);
        let flags = BundleFlags { atomic: true, ordered: true };
        let control = |ctrl_type| Message::BundleControl(BundleControl { bundle_id, ctrl_type, flags });
        match self.request(control(BundleCtrlType::OpenRequest)).await {
            Ok(Message::BundleControl(c)) if c.ctrl_type == BundleCtrlType::OpenReply => {}
            Ok(other) => {
                return Err(transport(OfError::Unexpected {
                    request: "bundle open".into(),
                    reply: message_name(&other),
                }))
            }
            Err(OfError::Refused { error, .. }) => {
                return Err(BundleError { refused: vec![], commit: Some(error), transport: None })
            }
            Err(e) => return Err(transport(e)),
        }
        let texts: Vec<String> = mods.iter().map(|m| m.flow.to_string()).collect();
        let mut msgs: Vec<(Message, Expect)> = mods
            .into_iter()
            .map(|m| {
                let add = BundleAdd { bundle_id, flags, message: Box::new(Message::FlowMod(m)) };
                (Message::BundleAdd(add), Expect::Nothing)
            })
            .collect();
        msgs.push((control(BundleCtrlType::CommitRequest), Expect::Reply));
        let mut rxs = self.submit(msgs).map_err(transport)?;
        let (_, commit_rx) = rxs.pop().expect("commit");
        let commit = Self::wait(commit_rx, "bundle commit").await;
        let mut refused = Vec::new();
        for (i, (_, rx)) in rxs.into_iter().enumerate() {
            match Self::wait(rx, "bundle add").await {
                Ok(_) => {}
                Err(OfError::Refused { error, .. }) => refused.push((i, texts[i].clone(), error)),
                Err(e) => return Err(transport(e)),
            }
        }
        match commit {
            Ok(Outcome::Reply(Message::BundleControl(c)))
                if c.ctrl_type == BundleCtrlType::CommitReply && refused.is_empty() =>
            {
                Ok(())
            }
            Ok(other) => Err(BundleError {
                refused,
                commit: None,
                transport: Some(format!(
                    "unexpected reply to bundle commit: {}",
                    match other {
                        Outcome::Reply(m) => message_name(&m),
                        _ => "none".into(),
                    }
                )),
            }),
            Err(OfError::Refused { error, .. }) => {
                Err(BundleError { refused, commit: Some(error), transport: None })
            }
            Err(e) => Err(transport(e)),
        }
    }

    /// Reads back the flows of one table, or of every table.
    pub async fn dump_flows(&self, table: Option<u8>) -> Result<Vec<FlowStats>, OfError> {
        let mut req = FlowStatsRequest::all();
        if let Some(t) = table {
            req.table_id = t;
        }
        let mut flows = Vec::new();
        for part in self.request_multipart(MultipartRequest::flow(req)).await? {
            match part.body {
                MultipartReplyBody::Flow(f) => flows.extend(f),
                other => {
                    return Err(OfError::Unexpected {
                        request: "flow stats".into(),
                        reply: format!("{other:?}").chars().take(80).collect(),
                    })
                }
            }
        }
        Ok(flows)
    }
}

pub fn version_name(v: u8) -> &'static str {
    match v {
        of::OFP13 => "OpenFlow 1.3",
        of::OFP14 => "OpenFlow 1.4",
        of::OFP15 => "OpenFlow 1.5",
        _ => "OpenFlow (other)",
    }
}

/// A short name of a message for errors and logs.
fn message_name(m: &Message) -> String {
    let debug = format!("{m:?}");
    let end = debug.find(['(', ' ', '{']).unwrap_or(debug.len());
    debug[..end].to_owned()
}

/// Reads exactly one message (used during the handshake, before the reader task runs).
async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(of::Header, Message), OfError> {
    loop {
        if let Some(n) = of::message_len(buf).map_err(|e| OfError::Decode(e.to_string()))? {
            if buf.len() >= n {
                let decoded = of::decode(&buf[..n]).map_err(|e| OfError::Decode(e.to_string()));
                buf.drain(..n);
                return decoded;
            }
        }
        let mut chunk = [0u8; 4096];
        let got = r.read(&mut chunk).await.map_err(|e| OfError::Decode(e.to_string()))?;
        if got == 0 {
            return Err(OfError::Closed);
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    closed: Arc<watch::Sender<Option<String>>>,
) {
    while let Some(batch) = rx.recv().await {
        if let Err(e) = w.write_all(&batch.bytes).await {
            closed.send_if_modified(|c| {
                c.get_or_insert_with(|| format!("write failed: {e}"));
                true
            });
            return;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    mut buf: Vec<u8>,
    version: u8,
    pending: Pending,
    writer: mpsc::UnboundedSender<Batch>,
    events: mpsc::UnboundedSender<OfEvent>,
    closed: Arc<watch::Sender<Option<String>>>,
) {
    let mut chunk = vec![0u8; READ_CHUNK];
    let reason = 'conn: loop {
        // Handle every complete message in the buffer.
        let mut start = 0;
        loop {
            let n = match of::message_len(&buf[start..]) {
                Ok(Some(n)) if buf.len() - start >= n => n,
                Ok(_) => break,
                Err(e) => break 'conn format!("bad framing from the switch: {e}"),
            };
            let frame = &buf[start..start + n];
            start += n;
            match of::decode(frame) {
                Ok((header, msg)) => dispatch(header, msg, version, &pending, &writer, &events),
                Err(e) => tracing::warn!(error = %e, "undecodable OpenFlow message from the switch; ignored"),
            }
        }
        buf.drain(..start);
        match r.read(&mut chunk).await {
            Ok(0) => break "the switch closed the connection".to_owned(),
            Ok(got) => buf.extend_from_slice(&chunk[..got]),
            Err(e) => break format!("read failed: {e}"),
        }
    };
    closed.send_if_modified(|c| {
        c.get_or_insert_with(|| reason.clone());
        true
    });
    // Fail every waiter: dropping the senders makes them see `Closed`.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let _ = events.send(OfEvent::Disconnected { reason });
}

fn dispatch(
    header: of::Header,
    msg: Message,
    version: u8,
    pending: &Pending,
    writer: &mpsc::UnboundedSender<Batch>,
    events: &mpsc::UnboundedSender<OfEvent>,
) {
    if let Message::EchoRequest(data) = msg {
        let _ = writer.send(Batch { bytes: of::encode(version, header.xid, &Message::EchoReply(data)) });
        return;
    }
    let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
    let xid = header.xid;
    let Some(waiter) = pending.get_mut(&xid) else {
        drop(pending);
        match msg {
            Message::Error(e) => tracing::warn!(xid, error = %e, "OpenFlow error for no pending request"),
            msg => {
                let _ = events.send(OfEvent::Message(Box::new(msg)));
            }
        }
        return;
    };
    let outcome = match msg {
        Message::Error(e) => Some(Err(e)),
        Message::MultipartReply(part) if waiter.expect == Expect::Multipart => {
            let more = part.more();
            waiter.parts.push(Message::MultipartReply(part));
            (!more).then(|| Ok(Outcome::Parts(std::mem::take(&mut waiter.parts))))
        }
        msg => Some(Ok(Outcome::Reply(msg))),
    };
    let Some(outcome) = outcome else { return };
    if let Some(w) = pending.remove(&xid) {
        let _ = w.tx.send(outcome);
    }
    // The switch has processed this request (a reply or an error says so), hence everything sent
    // before it: those expecting no reply of their own, and not refused by now, succeeded.
    let done: Vec<u32> =
        pending.range(..xid).filter(|(_, w)| w.expect == Expect::Nothing).map(|(x, _)| *x).collect();
    for x in done {
        if let Some(w) = pending.remove(&x) {
            let _ = w.tx.send(Ok(Outcome::Done));
        }
    }
}

// === Switch: a connection kept up ===

/// Keeps an OpenFlow connection to one bridge up, reconnecting with backoff (and saying so).
#[derive(Clone)]
pub struct Switch {
    target: Target,
    current: watch::Receiver<Option<OfConn>>,
}

impl Switch {
    /// Starts connecting in the background. Events (including Connected / Disconnected) go to `events`.
    pub fn spawn(target: Target, events: mpsc::UnboundedSender<OfEvent>) -> Switch {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(keep_connected(target.clone(), tx, events));
        Switch { target, current: rx }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The live connection right now, if there is one.
    pub fn now(&self) -> Option<OfConn> {
        self.current.borrow().clone().filter(|c| !c.is_closed())
    }

    /// The live connection, waiting for one if there is none right now.
    pub async fn connection(&self) -> Result<OfConn, OfError> {
        let mut rx = self.current.clone();
        loop {
            if let Some(conn) = rx.borrow_and_update().clone().filter(|c| !c.is_closed()) {
                return Ok(conn);
            }
            rx.changed().await.map_err(|_| OfError::Closed)?;
        }
    }
}

async fn keep_connected(
    target: Target,
    current: watch::Sender<Option<OfConn>>,
    events: mpsc::UnboundedSender<OfEvent>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if current.is_closed() {
            return; // nobody holds the Switch any more
        }
        match OfConn::connect(&target, events.clone()).await {
            Ok(conn) => {
                backoff = Duration::from_millis(100);
                current.send_replace(Some(conn.clone()));
                let reason = tokio::select! {
                    reason = conn.closed() => reason,
                    _ = current.closed() => return,
                };
                current.send_replace(None);
                tracing::warn!(%target, %reason, "OpenFlow connection lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(%target, error = %e, retry_in = ?backoff, "cannot connect to the switch");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = current.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
