//! HTTPS for `tern server`: the certificate chain and private key from PEM files, a rustls server
//! configuration (ring; TLS 1.2 and 1.3; ALPN h2 and http/1.1), and [`TlsListener`], an
//! [`axum::serve::Listener`] that hands axum only connections whose handshake has completed — so
//! `axum::serve(...).with_graceful_shutdown(...)` serves HTTPS exactly as it serves HTTP (the same
//! HTTP/1.1 and HTTP/2 connection handling, the same graceful shutdown).
//!
//! Handshakes run in tasks of their own, so a slow or silent client holds up no one else; a
//! handshake that fails or takes longer than [`HANDSHAKE_TIMEOUT`] drops that one connection
//! (logged at debug).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, SectionKind};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::TlsFiles;

/// How long a client may take over the TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for axum to take them (axum takes them as fast as it can spawn).
const READY_QUEUE: usize = 64;

/// The rustls server configuration for `files`: the chain and key checked to belong together.
/// Every error names the file and what is wrong with it.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = load_chain(&files.cert)?;
    let key = load_key(&files.key)?;
    let (cert, key_path) = (files.cert.display(), files.key.display());
    // ring, as the etcd client uses (aws-lc-rs would add a second crypto library to the build).
    // rustls deprecates it for lacking post-quantum key exchange; it has X25519 and P-256/P-384.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => anyhow::anyhow!(
                "the TLS key {key_path} does not match the certificate {cert} (the server's own \
                 certificate must come first in {cert}, before any intermediate)"
            ),
            e => anyhow::anyhow!("cannot use the TLS certificate {cert} with the key {key_path}: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates in the PEM file `path`, in order (the server's own first).
fn load_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let sections = read_pem(path, "certificate")?;
    let chain: Vec<_> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if chain.is_empty() {
        let swapped = if sections.iter().any(|(kind, _)| is_private_key(*kind)) {
            " but a private key (are --tls-cert and --tls-key swapped?)"
        } else {
            ""
        };
        anyhow::bail!("the TLS certificate {} holds no certificate{swapped}", path.display());
    }
    Ok(chain)
}

/// The one private key in the PEM file `path` (PKCS#8, PKCS#1 RSA or SEC1 EC).
fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let sections = read_pem(path, "key")?;
    let mut keys = sections.iter().filter(|(kind, _)| is_private_key(*kind));
    let Some((kind, der)) = keys.next() else {
        let why = if sections.iter().any(|(kind, _)| *kind == SectionKind::Certificate) {
            " but a certificate (are --tls-cert and --tls-key swapped?)"
        } else if std::fs::read(path).is_ok_and(|b| contains(&b, b"ENCRYPTED")) {
            ": it is encrypted, and tern needs it unencrypted (`openssl pkey -in KEY -out PLAIN`; \
             keep PLAIN readable by tern alone)"
        } else {
            " (a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section)"
        };
        anyhow::bail!("the TLS key {} holds no private key{why}", path.display());
    };
    if keys.next().is_some() {
        anyhow::bail!("the TLS key {} holds more than one private key", path.display());
    }
    let der = der.clone();
    Ok(match kind {
        SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
        SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
        _ => PrivateKeyDer::Pkcs8(der.into()),
    })
}

fn is_private_key(kind: SectionKind) -> bool {
    matches!(kind, SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The PEM sections rustls knows in the file `path` (the TLS `what`), in order.
fn read_pem(path: &Path, what: &str) -> anyhow::Result<Vec<(SectionKind, Vec<u8>)>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the TLS {what} {}", path.display()))?;
    if !contains(&bytes, b"-----BEGIN ") {
        let der =
            if bytes.first() == Some(&0x30) { " (it looks like DER: convert it with openssl)" } else { "" };
        anyhow::bail!("the TLS {what} {} is not a PEM file{der}", path.display());
    }
    let mut sections = Vec::new();
    let mut rest = &bytes[..];
    loop {
        match pem::from_buf(&mut rest) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => return Ok(sections),
            Err(e) => anyhow::bail!("the TLS {what} {} is not valid PEM: {e}", path.display()),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns (as `axum::serve(...).with_graceful_shutdown(...)`, which it is). Requests
/// reach `app` marked `X-Forwarded-Proto: https`, so the links in answers are https.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TlsListener::new(listener, config)?;
    let app = app.layer(axum::middleware::from_fn(https_request));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Marks a request as come over TLS for the links in answers (whatever the client claimed), and
/// gives an HTTP/2 request the Host header HTTP/1.1 has (h2 carries it in the URI only).
async fn https_request(mut req: Request, next: Next) -> Response {
    let headers = req.headers_mut();
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    if !headers.contains_key(header::HOST) {
        let authority = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(authority) = authority {
            req.headers_mut().insert(header::HOST, authority);
        }
    }
    next.run(req).await
}

/// A TCP listener whose connections are handed on once their TLS handshake has completed (see
/// the module documentation). Dropping it (as axum does when it shuts down) closes the socket and
/// abandons the handshakes in progress.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` with `config` (see [`server_config`]). Must be called within a
    /// tokio runtime: accepting runs in a task of its own.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ends only once this receiver is gone (or if it panicked): no more
            // connections will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and starts a handshake for each, until the [`TlsListener`] is dropped.
async fn accept_loop(
    mut listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            // axum's own accept: transient errors (a connection reset before it was accepted,
            // out of file descriptors) are logged and retried.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = ready.closed() => return,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not done after {HANDSHAKE_TIMEOUT:?}");
                        return;
                    }
                },
                // The server is shutting down.
                () = ready.closed() => return,
            };
            // An error means the server is shutting down: the connection is dropped.
            let _ = ready.send((tls, peer)).await;
        });
    }
}
