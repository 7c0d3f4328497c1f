//! TLS to etcd (`etcds://` DSNs): the client options built from the PEM files an [`EtcdTls`]
//! names, and a diagnosis for a failed connection.
//!
//! Why a diagnosis: under TLS 1.3 a server judges the client's certificate after the client has
//! finished its handshake, so when etcd refuses it (none given, or signed by another CA) gRPC only
//! sees the connection close ("broken pipe", "connection closed"). [`diagnose`] makes one TLS
//! connection of its own with the same files and reads etcd's verdict: the alert it sent
//! (`CertificateRequired`, `BadCertificate`, `UnknownCA`, ...) or the reason the client rejected
//! the server's certificate.

use crate::{EtcdTls, Result, StoreError};
use etcd_client::{Certificate, Identity, TlsOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
const PRIVATE_KEY: &str = "PRIVATE KEY-----";
/// How long the diagnosis may take per endpoint.
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_secs(3);

/// The PEM contents of the files of an [`EtcdTls`], read and checked once.
pub(super) struct TlsFiles {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// Reads the files: one that cannot be read, or has no PEM block of its kind, is an error
    /// naming it (the rest is checked by the TLS library when connecting).
    pub fn read(tls: &EtcdTls) -> Result<TlsFiles> {
        let ca = read_pem("CA certificate (ca=)", &tls.ca, CERTIFICATE)?;
        let identity = match &tls.identity {
            Some((cert, key)) => Some((
                read_pem("client certificate (cert=)", cert, CERTIFICATE)?,
                read_pem("client key (key=)", key, PRIVATE_KEY)?,
            )),
            None => None,
        };
        Ok(TlsFiles { ca, identity })
    }

    /// etcd-client's (tonic's) options.
    pub fn options(&self) -> TlsOptions {
        let options = TlsOptions::new().ca_certificate(Certificate::from_pem(&self.ca));
        match &self.identity {
            Some((cert, key)) => options.identity(Identity::from_pem(cert, key)),
            None => options,
        }
    }

    /// The same settings as a rustls configuration, for [`diagnose`].
    fn rustls_config(&self) -> std::result::Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca) {
            let cert = cert.map_err(|e| format!("CA certificate: {e}"))?;
            roots.add(cert).map_err(|e| format!("CA certificate: {e}"))?;
        }
        // The provider tonic uses for the real connection (feature `tls-ring`), so the diagnosis
        // negotiates as it does. rustls deprecates it for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client key: {e}"))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| format!("client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

fn read_pem(what: &str, path: &Path, marker: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| StoreError::Backend(format!("cannot read the etcd {what} {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&bytes).contains(marker) {
        return Err(StoreError::Backend(format!(
            "the etcd {what} {} is not a PEM file with a {marker:?} line",
            path.display()
        )));
    }
    Ok(bytes)
}

/// What a TLS connection of our own to `endpoint` ("HOST:PORT" or "https://HOST:PORT") says is
/// wrong at the TLS level: the handshake's error, or the alert etcd sends after it (under TLS 1.3
/// that is where a refused client certificate shows). `None` if TLS works or the endpoint cannot
/// be reached at all (the caller's error already says so).
pub(super) async fn diagnose(endpoint: &str, files: &TlsFiles) -> Option<String> {
    let config = match files.rustls_config() {
        Ok(config) => Arc::new(config),
        Err(why) => return Some(why),
    };
    let address = endpoint.strip_prefix("https://").unwrap_or(endpoint).trim_end_matches('/');
    let (host, _) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let probe = async {
        let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
        let mut stream = match tokio_rustls::TlsConnector::from(config).connect(name, tcp).await {
            Ok(stream) => stream,
            Err(e) => return Some(format!("TLS handshake failed: {e}")),
        };
        // An HTTP/2 preface: a server that accepted us answers with its SETTINGS frame.
        if let Err(e) =
            stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await
        {
            return Some(format!("TLS: {e}"));
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf).await {
            // After the handshake, etcd's only objection can be the client certificate.
            Err(e) => Some(format!(
                "etcd ended the TLS connection: {e} (it checks the client certificate, cert=, against its --trusted-ca-file)"
            )),
            Ok(0) => Some(
                "etcd closed the TLS connection without a word (does it accept this client's certificate?)"
                    .into(),
            ),
            Ok(_) => None,
        }
    };
    tokio::time::timeout(DIAGNOSIS_TIMEOUT, probe).await.ok().flatten()
}
