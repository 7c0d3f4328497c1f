//! Store addresses (DSNs) as operators write them, and opening the backend they name:
//! `memory:`, `redb:PATH` (the default, `redb:./tern-data/nb.redb`) and
//! `etcd://HOST:PORT[,HOST:PORT...]`.

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
    /// etcd client endpoints, `HOST:PORT` each.
    Etcd(Vec<String>),
}

impl Dsn {
    /// The address used when none is given.
    pub const DEFAULT: &'static str = "redb:./tern-data/nb.redb";
}

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
            let mut endpoints = Vec::new();
            for ep in rest.trim_end_matches('/').split(',') {
                let Some((host, port)) = ep.rsplit_once(':') else {
                    return Err(invalid(&format!("endpoint {ep:?} is not HOST:PORT")));
                };
                if host.is_empty() {
                    return Err(invalid(&format!("endpoint {ep:?} has no host")));
                }
                if port.parse::<u16>().map_or(true, |p| p == 0) {
                    return Err(invalid(&format!("endpoint {ep:?} has an invalid port {port:?}")));
                }
                endpoints.push(ep.to_owned());
            }
            Ok(Dsn::Etcd(endpoints))
        } else {
            Err(invalid("expected memory:, redb:PATH or etcd://HOST:PORT[,HOST:PORT]"))
        }
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dsn::Memory => f.write_str("memory:"),
            Dsn::Redb(p) => write!(f, "redb:{}", p.display()),
            Dsn::Etcd(eps) => write!(f, "etcd://{}", eps.join(",")),
        }
    }
}

/// Opens the store a DSN names. Must be called inside a tokio runtime.
pub async fn open(dsn: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match dsn.parse::<Dsn>()? {
        Dsn::Memory => Arc::new(LocalStore::memory()?),
        Dsn::Redb(path) => Arc::new(LocalStore::open_redb(path)?),
        Dsn::Etcd(endpoints) => Arc::new(EtcdStore::connect(&endpoints).await?),
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
    fn rejects_bad_forms_naming_them() {
        for bad in ["", "redb:", "etcd://", "etcd://host", "etcd://:2379", "etcd://h:99999", "mysql://x"] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
