//! Store addresses (DSNs) as operators write them, and opening the backend they name:
//! `memory:`, `redb:PATH` (the default, `redb:./tern-data/nb.redb`),
//! `etcd://HOST:PORT[,HOST:PORT...]` and, over TLS,
//! `etcds://HOST:PORT[,HOST:PORT...]?ca=PATH[&cert=PATH&key=PATH]`.

use crate::{etcd::EtcdStore, LocalStore, Store, StoreError};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// A parsed store address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dsn {
    Memory,
    Redb(PathBuf),
    /// etcd client endpoints, `HOST:PORT` each, in plain gRPC.
    Etcd(Vec<String>),
    /// etcd client endpoints (`HOST:PORT` each, the host as the members' certificates name it),
    /// over TLS.
    EtcdTls {
        endpoints: Vec<String>,
        tls: EtcdTls,
    },
}

/// The PEM files of a TLS connection to etcd (`etcds://...?ca=PATH&cert=PATH&key=PATH`), read
/// when the store is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate(s) that signed the members' server certificates (etcd's
    /// `--trusted-ca-file` on the client side): `ca=`.
    pub ca: PathBuf,
    /// This client's certificate and private key, `cert=` and `key=`, for members started with
    /// `--client-cert-auth`. `None`: the client presents no certificate.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Dsn {
    /// The address used when none is given.
    pub const DEFAULT: &'static str = "redb:./tern-data/nb.redb";
}

/// The TLS form, for error messages.
const ETCDS_FORM: &str = "etcds://HOST:PORT[,HOST:PORT]?ca=PATH&cert=PATH&key=PATH";

impl FromStr for Dsn {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidDsn { dsn: s.to_owned(), reason: reason.to_owned() };
        if s == "memory:" || s == "memory" {
            Ok(Dsn::Memory)
        } else if let Some(path) = s.strip_prefix("redb:") {
            if path.is_empty() {
                return Err(invalid("redb needs a file path, as in redb:./tern-data/nb.redb"));
            }
            Ok(Dsn::Redb(PathBuf::from(path)))
        } else if let Some(rest) = s.strip_prefix("etcd://") {
            if rest.contains('?') {
                return Err(invalid(&format!("etcd:// takes no parameters; etcd over TLS is {ETCDS_FORM}")));
            }
            Ok(Dsn::Etcd(parse_endpoints(rest).map_err(|why| invalid(&why))?))
        } else if let Some(rest) = s.strip_prefix("etcds://") {
            let Some((hosts, query)) = rest.split_once('?') else {
                return Err(invalid(&format!("etcds:// needs at least ca=PATH, as in {ETCDS_FORM}")));
            };
            let endpoints = parse_endpoints(hosts).map_err(|why| invalid(&why))?;
            let tls = parse_tls(query).map_err(|why| invalid(&why))?;
            Ok(Dsn::EtcdTls { endpoints, tls })
        } else {
            Err(invalid(&format!(
                "expected memory:, redb:PATH, etcd://HOST:PORT[,HOST:PORT] or {ETCDS_FORM}"
            )))
        }
    }
}

/// `HOST:PORT[,HOST:PORT...]` (a trailing `/` ignored).
fn parse_endpoints(list: &str) -> Result<Vec<String>, String> {
    let mut endpoints = Vec::new();
    for ep in list.trim_end_matches('/').split(',') {
        let Some((host, port)) = ep.rsplit_once(':') else {
            return Err(format!("endpoint {ep:?} is not HOST:PORT"));
        };
        if host.is_empty() {
            return Err(format!("endpoint {ep:?} has no host"));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("endpoint {ep:?} has an invalid port {port:?}"));
        }
        endpoints.push(ep.to_owned());
    }
    Ok(endpoints)
}

/// The query of an `etcds://` DSN: `ca=PATH[&cert=PATH&key=PATH]`, each once, paths taken as
/// written (no percent-decoding).
fn parse_tls(query: &str) -> Result<EtcdTls, String> {
    let (mut ca, mut cert, mut key) = (None, None, None);
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("parameter {pair:?} is not NAME=VALUE"));
        };
        let slot = match name {
            "ca" => &mut ca,
            "cert" => &mut cert,
            "key" => &mut key,
            _ => return Err(format!("unknown parameter {name:?} (etcds:// takes ca, cert and key)")),
        };
        if value.is_empty() {
            return Err(format!("parameter {name:?} has no value (a file path)"));
        }
        if slot.replace(PathBuf::from(value)).is_some() {
            return Err(format!("parameter {name:?} is given twice"));
        }
    }
    let Some(ca) = ca else {
        return Err(
            "parameter \"ca\" is missing: the CA certificate that signed the etcd members' certificates"
                .to_owned(),
        );
    };
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err("parameter \"cert\" needs \"key\" (the client certificate's private key)".into())
        }
        (None, Some(_)) => return Err("parameter \"key\" needs \"cert\" (the client certificate)".into()),
    };
    Ok(EtcdTls { ca, identity })
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dsn::Memory => f.write_str("memory:"),
            Dsn::Redb(p) => write!(f, "redb:{}", p.display()),
            Dsn::Etcd(eps) => write!(f, "etcd://{}", eps.join(",")),
            Dsn::EtcdTls { endpoints, tls } => {
                write!(f, "etcds://{}?ca={}", endpoints.join(","), tls.ca.display())?;
                if let Some((cert, key)) = &tls.identity {
                    write!(f, "&cert={}&key={}", cert.display(), key.display())?;
                }
                Ok(())
            }
        }
    }
}

/// Opens the store a DSN names. Must be called inside a tokio runtime.
pub async fn open(dsn: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match dsn.parse::<Dsn>()? {
        Dsn::Memory => Arc::new(LocalStore::memory()?),
        Dsn::Redb(path) => Arc::new(LocalStore::open_redb(path)?),
        Dsn::Etcd(endpoints) => Arc::new(EtcdStore::connect(&endpoints).await?),
        Dsn::EtcdTls { endpoints, tls } => Arc::new(EtcdStore::connect_tls(&endpoints, &tls).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("memory:".parse::<Dsn>().unwrap(), Dsn::Memory);
        assert_eq!("redb:/tmp/x.redb".parse::<Dsn>().unwrap(), Dsn::Redb("/tmp/x.redb".into()));
        assert_eq!(
            "etcd://127.0.0.1:2379,10.0.0.2:2379".parse::<Dsn>().unwrap(),
            Dsn::Etcd(vec!["127.0.0.1:2379".into(), "10.0.0.2:2379".into()])
        );
        assert_eq!(Dsn::DEFAULT.parse::<Dsn>().unwrap().to_string(), Dsn::DEFAULT);
    }

    #[test]
    fn parses_etcd_over_tls_and_prints_it_back() {
        let text =
            "etcds://etcd1:2379,etcd2:2379?ca=/etc/tern/ca.pem&cert=/etc/tern/c.pem&key=/etc/tern/c-key.pem";
        let dsn = text.parse::<Dsn>().unwrap();
        assert_eq!(
            dsn,
            Dsn::EtcdTls {
                endpoints: vec!["etcd1:2379".into(), "etcd2:2379".into()],
                tls: EtcdTls {
                    ca: "/etc/tern/ca.pem".into(),
                    identity: Some(("/etc/tern/c.pem".into(), "/etc/tern/c-key.pem".into())),
                },
            }
        );
        assert_eq!(dsn.to_string(), text);
        // Parameters in any order; a CA alone (no client certificate) is a valid DSN.
        let reordered = "etcds://h:1?key=k.pem&ca=ca.pem&cert=c.pem".parse::<Dsn>().unwrap();
        assert_eq!(reordered.to_string(), "etcds://h:1?ca=ca.pem&cert=c.pem&key=k.pem");
        let ca_only = "etcds://h:1?ca=ca.pem".parse::<Dsn>().unwrap();
        assert!(matches!(&ca_only, Dsn::EtcdTls { tls, .. } if tls.identity.is_none()));
        assert_eq!(ca_only.to_string(), "etcds://h:1?ca=ca.pem");
    }

    #[test]
    fn rejects_bad_forms_naming_them() {
        for bad in ["", "redb:", "etcd://", "etcd://host", "etcd://:2379", "etcd://h:99999", "mysql://x"] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn rejects_bad_tls_parameters_naming_them() {
        for (bad, names) in [
            ("etcds://h:1", "ca=PATH"),
            ("etcds://h:1?", "\"\""),
            ("etcds://h:1?cert=c.pem&key=k.pem", "\"ca\""),
            ("etcds://h:1?ca=a.pem&cert=c.pem", "\"cert\" needs \"key\""),
            ("etcds://h:1?ca=a.pem&key=k.pem", "\"key\" needs \"cert\""),
            ("etcds://h:1?ca=a.pem&user=u", "unknown parameter \"user\""),
            ("etcds://h:1?ca=", "\"ca\" has no value"),
            ("etcds://h:1?ca=a&ca=b", "\"ca\" is given twice"),
            ("etcds://h?ca=a", "\"h\" is not HOST:PORT"),
            ("etcd://h:1?ca=a", "etcds://"),
        ] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(names), "{bad}: {err}");
        }
    }
}
