//! Store addresses (DSNs) as operators write them, and opening the backend they name:
//! `memory:`, `redb:PATH` (the default, `redb:./tern-data/nb.redb`),
//! `etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]` and, over TLS,
//! `etcds://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]?ca=PATH[&cert=PATH&key=PATH]`.
//! Either etcd form may name the user as `?user=NAME&password-file=PATH` instead (both forms
//! percent-decode the user name; the password file's trailing newline is not part of it).
//! A DSN prints (and appears in errors) with its password hidden: `USER:***@`.

use crate::{etcd::EtcdStore, LocalStore, Store, StoreError};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// A parsed store address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dsn {
    Memory,
    Redb(PathBuf),
    /// etcd client endpoints, `HOST:PORT` each, in plain gRPC; the etcd user, if any.
    Etcd {
        endpoints: Vec<String>,
        user: Option<EtcdUser>,
    },
    /// etcd client endpoints (`HOST:PORT` each, the host as the members' certificates name it),
    /// over TLS; the etcd user, if any.
    EtcdTls {
        endpoints: Vec<String>,
        tls: EtcdTls,
        user: Option<EtcdUser>,
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

/// An etcd user, for clusters with etcd's authentication enabled (`etcdctl auth enable`):
/// `USER:PASSWORD@` before the endpoints, or `?user=NAME&password-file=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdUser {
    pub name: String,
    pub password: EtcdPassword,
}

/// Where an etcd user's password comes from. Its `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum EtcdPassword {
    /// Written in the DSN (`USER:PASSWORD@`), percent-decoded.
    Given(String),
    /// A file holding it (`password-file=PATH`), read when the store is opened; a trailing
    /// newline is not part of the password.
    File(PathBuf),
}

impl fmt::Debug for EtcdPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdPassword::Given(_) => f.write_str("Given(\"***\")"),
            EtcdPassword::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl EtcdUser {
    /// The password: as given, or read from its file (an error naming the file if it cannot be
    /// read or is empty).
    pub fn password(&self) -> Result<String, StoreError> {
        match &self.password {
            EtcdPassword::Given(password) => Ok(password.clone()),
            EtcdPassword::File(path) => read_password_file(&self.name, path),
        }
    }
}

fn read_password_file(user: &str, path: &Path) -> Result<String, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::Backend(format!(
            "cannot read the password file {} of etcd user {user:?}: {e}",
            path.display()
        ))
    })?;
    let password = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if password.is_empty() {
        return Err(StoreError::Backend(format!(
            "the password file {} of etcd user {user:?} is empty",
            path.display()
        )));
    }
    Ok(password.to_owned())
}

impl Dsn {
    /// The address used when none is given.
    pub const DEFAULT: &'static str = "redb:./tern-data/nb.redb";
}

/// The TLS form, for error messages.
const ETCDS_FORM: &str = "etcds://HOST:PORT[,HOST:PORT]?ca=PATH&cert=PATH&key=PATH";
/// The forms of an etcd user, for error messages.
const USER_FORMS: &str = "etcd://USER:PASSWORD@HOST:PORT or etcd://HOST:PORT?user=NAME&password-file=PATH";

impl FromStr for Dsn {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidDsn { dsn: redact(s), reason: reason.to_owned() };
        if s == "memory:" || s == "memory" {
            Ok(Dsn::Memory)
        } else if let Some(path) = s.strip_prefix("redb:") {
            if path.is_empty() {
                return Err(invalid("redb needs a file path, as in redb:./tern-data/nb.redb"));
            }
            Ok(Dsn::Redb(PathBuf::from(path)))
        } else if let Some(rest) = s.strip_prefix("etcd://") {
            let (endpoints, query, user) = parse_etcd(rest).map_err(|why| invalid(&why))?;
            if let Some(name) = query.tls_parameter() {
                return Err(invalid(&format!(
                    "etcd:// takes no TLS parameter ({name:?}); etcd over TLS is {ETCDS_FORM}"
                )));
            }
            Ok(Dsn::Etcd { endpoints, user })
        } else if let Some(rest) = s.strip_prefix("etcds://") {
            if !rest.contains('?') {
                return Err(invalid(&format!("etcds:// needs at least ca=PATH, as in {ETCDS_FORM}")));
            }
            let (endpoints, query, user) = parse_etcd(rest).map_err(|why| invalid(&why))?;
            let tls = query.tls().map_err(|why| invalid(&why))?;
            Ok(Dsn::EtcdTls { endpoints, tls, user })
        } else {
            Err(invalid(&format!(
                "expected memory:, redb:PATH, etcd://HOST:PORT[,HOST:PORT] or {ETCDS_FORM}"
            )))
        }
    }
}

/// The part of an etcd DSN after the scheme, `[USERINFO@]HOST:PORT[,...][?QUERY]`, split as a URL
/// is: the query starts at the first `?`, the user part ends at the last `@` before it.
fn parse_etcd(rest: &str) -> Result<(Vec<String>, Query, Option<EtcdUser>), String> {
    let before_query = rest.split_once('?').map_or(rest, |(a, _)| a);
    if !before_query.contains('@') && rest.split_once('=').map_or(rest, |(a, _)| a).contains('@') {
        // Parsed as a URL, a password with an unencoded '?' would be quoted as host or parameter.
        return Err("a '?' in USER:PASSWORD@ must be percent-encoded (%3F)".into());
    }
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Query::parse(query)?),
        None => (rest, Query::default()),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let endpoints = parse_endpoints(hosts)?;
    let user = parse_user(userinfo, query.user.clone(), query.password_file.clone())?;
    Ok((endpoints, query, user))
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

/// The query of an etcd DSN: `ca`, `cert`, `key` (TLS, `etcds://` only), `user` and
/// `password-file`, each once; paths taken as written, the user name percent-decoded.
#[derive(Default)]
struct Query {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
}

impl Query {
    fn parse(query: &str) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in query.split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!("parameter {pair:?} is not NAME=VALUE"));
            };
            let (slot, what) = match name {
                "ca" => (&mut q.ca, "a file path"),
                "cert" => (&mut q.cert, "a file path"),
                "key" => (&mut q.key, "a file path"),
                "password-file" => (&mut q.password_file, "a file path"),
                "user" => {
                    if value.is_empty() {
                        return Err("parameter \"user\" has no value (an etcd user name)".into());
                    }
                    let name = decode(value).map_err(|why| format!("parameter \"user\": {why}"))?;
                    if q.user.replace(name).is_some() {
                        return Err("parameter \"user\" is given twice".into());
                    }
                    continue;
                }
                "password" => {
                    return Err(format!(
                        "unknown parameter \"password\": an etcd user is given as {USER_FORMS}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?} (etcd:// takes user and password-file; etcds:// \
                         also ca, cert and key)"
                    ))
                }
            };
            if value.is_empty() {
                return Err(format!("parameter {name:?} has no value ({what})"));
            }
            if slot.replace(PathBuf::from(value)).is_some() {
                return Err(format!("parameter {name:?} is given twice"));
            }
        }
        Ok(q)
    }

    /// The first TLS parameter given, if any.
    fn tls_parameter(&self) -> Option<&'static str> {
        [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)]
            .into_iter()
            .find_map(|(name, value)| value.is_some().then_some(name))
    }

    fn tls(&self) -> Result<EtcdTls, String> {
        let Some(ca) = self.ca.clone() else {
            return Err(
                "parameter \"ca\" is missing: the CA certificate that signed the etcd members' certificates"
                    .to_owned(),
            );
        };
        let identity = match (self.cert.clone(), self.key.clone()) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err("parameter \"cert\" needs \"key\" (the client certificate's private key)".into())
            }
            (None, Some(_)) => return Err("parameter \"key\" needs \"cert\" (the client certificate)".into()),
        };
        Ok(EtcdTls { ca, identity })
    }
}

/// The etcd user: from `USER:PASSWORD@` (percent-decoded), or `user=` and `password-file=`; a
/// user needs a password and the other way round. Errors never show the password.
fn parse_user(
    userinfo: Option<&str>,
    user_param: Option<String>,
    password_file: Option<PathBuf>,
) -> Result<Option<EtcdUser>, String> {
    let (mut name, mut password) = (None, None);
    if let Some(info) = userinfo {
        let (raw_name, raw_password) = match info.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (info, None),
        };
        if raw_name.is_empty() {
            return Err(format!("the user name before '@' is empty; an etcd user is given as {USER_FORMS}"));
        }
        let decoded = decode(raw_name).map_err(|why| format!("the user name before '@': {why}"))?;
        password = match raw_password {
            Some("") => return Err(format!("etcd user {decoded:?} has an empty password")),
            Some(p) => Some(EtcdPassword::Given(
                decode(p).map_err(|why| format!("the password of etcd user {decoded:?}: {why}"))?,
            )),
            None => None,
        };
        name = Some(decoded);
    }
    if let Some(user) = user_param {
        if name.replace(user).is_some() {
            return Err("the etcd user is given twice: before '@' and as user=".into());
        }
    }
    if let Some(path) = password_file {
        if password.replace(EtcdPassword::File(path)).is_some() {
            return Err("the etcd password is given twice: after 'USER:' and as password-file=".into());
        }
    }
    match (name, password) {
        (Some(name), Some(password)) => Ok(Some(EtcdUser { name, password })),
        (None, None) => Ok(None),
        (Some(name), None) => Err(format!("etcd user {name:?} has no password; give it as {USER_FORMS}")),
        (None, Some(_)) => Err(format!("password-file= needs user=NAME, as in {USER_FORMS}")),
    }
}

/// Percent-decoding (`%40` for `@`, `%3A` for `:`, ...), the result UTF-8. The error does not
/// quote the text (it may be a password).
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Err(format!("'%' at byte {i} is not followed by two hex digits (write '%' as %25)"));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "its percent-escapes do not decode to UTF-8".to_owned())
}

/// Percent-encoding of a user name for printing: everything but unreserved URL characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The DSN as written, with the password of a `USER:PASSWORD@` part hidden: for error messages
/// about DSNs that may be malformed. The user part ends at the last `@` before the query or, if
/// there is none there (a password with an unencoded `?`), the last `@` before the first `=`.
fn redact(dsn: &str) -> String {
    let Some(scheme_end) = dsn.find("://").map(|i| i + 3) else {
        return dsn.to_owned();
    };
    let rest = &dsn[scheme_end..];
    let authority = rest.split_once('?').map_or(rest, |(a, _)| a);
    let at = authority.rfind('@').or_else(|| rest.split_once('=').map_or(rest, |(a, _)| a).rfind('@'));
    match at {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &dsn[..scheme_end], &rest[at..]),
            None => dsn.to_owned(),
        },
        None => dsn.to_owned(),
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user as `NAME:***@` (its password given in the DSN) or as `user=` parameters (its
        // password in a file, whose path is no secret).
        let given = |user: &Option<EtcdUser>| match user {
            Some(EtcdUser { name, password: EtcdPassword::Given(_) }) => format!("{}:***@", encode(name)),
            _ => String::new(),
        };
        let file = |user: &Option<EtcdUser>| match user {
            Some(EtcdUser { name, password: EtcdPassword::File(path) }) => {
                Some(format!("user={}&password-file={}", encode(name), path.display()))
            }
            _ => None,
        };
        match self {
            Dsn::Memory => f.write_str("memory:"),
            Dsn::Redb(p) => write!(f, "redb:{}", p.display()),
            Dsn::Etcd { endpoints, user } => {
                write!(f, "etcd://{}{}", given(user), endpoints.join(","))?;
                match file(user) {
                    Some(params) => write!(f, "?{params}"),
                    None => Ok(()),
                }
            }
            Dsn::EtcdTls { endpoints, tls, user } => {
                write!(f, "etcds://{}{}?ca={}", given(user), endpoints.join(","), tls.ca.display())?;
                if let Some((cert, key)) = &tls.identity {
                    write!(f, "&cert={}&key={}", cert.display(), key.display())?;
                }
                match file(user) {
                    Some(params) => write!(f, "&{params}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Opens the store a DSN names. Must be called inside a tokio runtime.
pub async fn open(dsn: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_dsn(&dsn.parse::<Dsn>()?).await
}

/// Opens the store of a parsed DSN (its `Display` hides the password, so a parsed DSN is opened
/// as it is, not printed and parsed again). Must be called inside a tokio runtime.
pub async fn open_dsn(dsn: &Dsn) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match dsn {
        Dsn::Memory => Arc::new(LocalStore::memory()?),
        Dsn::Redb(path) => Arc::new(LocalStore::open_redb(path)?),
        Dsn::Etcd { endpoints, user } => Arc::new(EtcdStore::open(endpoints, None, user.as_ref()).await?),
        Dsn::EtcdTls { endpoints, tls, user } => {
            Arc::new(EtcdStore::open(endpoints, Some(tls), user.as_ref()).await?)
        }
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn etcd(endpoints: &[&str]) -> Dsn {
        Dsn::Etcd { endpoints: endpoints.iter().map(|e| e.to_string()).collect(), user: None }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("memory:".parse::<Dsn>().unwrap(), Dsn::Memory);
        assert_eq!("redb:/tmp/x.redb".parse::<Dsn>().unwrap(), Dsn::Redb("/tmp/x.redb".into()));
        assert_eq!(
            "etcd://127.0.0.1:2379,10.0.0.2:2379".parse::<Dsn>().unwrap(),
            etcd(&["127.0.0.1:2379", "10.0.0.2:2379"])
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
                user: None,
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
    fn parses_etcd_users_and_never_prints_the_password() {
        let given = |name: &str, password: &str| {
            Some(EtcdUser { name: name.into(), password: EtcdPassword::Given(password.into()) })
        };
        let dsn = "etcd://tern:s3cret@h1:2379,h2:2379".parse::<Dsn>().unwrap();
        assert_eq!(
            dsn,
            Dsn::Etcd { endpoints: vec!["h1:2379".into(), "h2:2379".into()], user: given("tern", "s3cret") }
        );
        assert_eq!(dsn.to_string(), "etcd://tern:***@h1:2379,h2:2379");
        assert!(!format!("{dsn:?}").contains("s3cret"), "{dsn:?}");
        // Percent-decoded: '@', ':', '%', '/', '?' and non-ASCII in the password or the name.
        let dsn = "etcd://ops%40tern:p%40ss%3Aw%25rd%2F%3F%C3%A9@h:1".parse::<Dsn>().unwrap();
        assert_eq!(dsn, Dsn::Etcd { endpoints: vec!["h:1".into()], user: given("ops@tern", "p@ss:w%rd/?é") });
        assert_eq!(dsn.to_string(), "etcd://ops%40tern:***@h:1");
        // An unencoded '@' in the password: the user part ends at the last '@'.
        let dsn = "etcd://tern:a@b@h:1".parse::<Dsn>().unwrap();
        assert_eq!(dsn, Dsn::Etcd { endpoints: vec!["h:1".into()], user: given("tern", "a@b") });
        // Over TLS, with the user in front.
        let dsn = "etcds://tern:pw@h:1?ca=ca.pem&cert=c.pem&key=k.pem".parse::<Dsn>().unwrap();
        assert!(matches!(&dsn, Dsn::EtcdTls { user, .. } if *user == given("tern", "pw")));
        assert_eq!(dsn.to_string(), "etcds://tern:***@h:1?ca=ca.pem&cert=c.pem&key=k.pem");
    }

    #[test]
    fn parses_the_password_file_form_and_prints_it_back() {
        let file = |name: &str| {
            Some(EtcdUser { name: name.into(), password: EtcdPassword::File("/etc/tern/etcd-pw".into()) })
        };
        let text = "etcd://h:1?user=tern&password-file=/etc/tern/etcd-pw";
        let dsn = text.parse::<Dsn>().unwrap();
        assert_eq!(dsn, Dsn::Etcd { endpoints: vec!["h:1".into()], user: file("tern") });
        assert_eq!(dsn.to_string(), text);
        let text = "etcds://h:1?ca=ca.pem&user=tern&password-file=/etc/tern/etcd-pw";
        let dsn = text.parse::<Dsn>().unwrap();
        assert!(matches!(&dsn, Dsn::EtcdTls { user, .. } if *user == file("tern")));
        assert_eq!(dsn.to_string(), text);
        // The user before '@', the password in a file.
        let dsn = "etcd://tern@h:1?password-file=/etc/tern/etcd-pw".parse::<Dsn>().unwrap();
        assert_eq!(dsn, Dsn::Etcd { endpoints: vec!["h:1".into()], user: file("tern") });
        let dsn = "etcd://h:1?user=a%26b&password-file=/etc/tern/etcd-pw".parse::<Dsn>().unwrap();
        assert_eq!(dsn.to_string(), "etcd://h:1?user=a%26b&password-file=/etc/tern/etcd-pw");
    }

    #[test]
    fn reads_the_password_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let user = |path: &Path| EtcdUser { name: "tern".into(), password: EtcdPassword::File(path.into()) };
        for (content, password) in [("pw\n", "pw"), ("pw\r\n", "pw"), ("pw", "pw"), (" p w \n\n", " p w \n")]
        {
            let path = dir.path().join("pw");
            std::fs::write(&path, content).unwrap();
            assert_eq!(user(&path).password().unwrap(), password, "{content:?}");
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = user(&empty).password().unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains(&empty.display().to_string()), "{err}");
        let missing = dir.path().join("missing");
        let err = user(&missing).password().unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()) && err.contains("\"tern\""), "{err}");
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
            ("etcds://h:1?ca=a.pem&color=red", "unknown parameter \"color\""),
            ("etcds://h:1?ca=", "\"ca\" has no value"),
            ("etcds://h:1?ca=a&ca=b", "\"ca\" is given twice"),
            ("etcds://h?ca=a", "\"h\" is not HOST:PORT"),
            ("etcd://h:1?ca=a", "etcds://"),
        ] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(names), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_bad_users_without_showing_the_password() {
        for (bad, says) in [
            ("etcd://tern@h:1", "etcd user \"tern\" has no password"),
            ("etcd://h:1?user=tern", "etcd user \"tern\" has no password"),
            ("etcd://h:1?password-file=/pw", "password-file= needs user=NAME"),
            ("etcd://:pw@h:1", "user name before '@' is empty"),
            ("etcd://tern:@h:1", "has an empty password"),
            ("etcd://tern:pw@h:1?user=other", "user is given twice"),
            ("etcd://tern:pw@h:1?password-file=/pw", "password is given twice"),
            ("etcd://h:1?user=a&user=b&password-file=/pw", "\"user\" is given twice"),
            ("etcd://h:1?user=tern&password=pw", "unknown parameter \"password\": an etcd user is given as"),
            ("etcd://h:1?user=tern&password-file=", "\"password-file\" has no value"),
            ("etcd://h:1?user=&password-file=/pw", "\"user\" has no value"),
        ] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // A malformed DSN is quoted in the error with its password hidden, wherever it breaks.
        for (bad, shown) in [
            ("etcd://tern:pw%zz@h:1", "etcd://tern:***@h:1"),
            ("etcd://tern:pw@h:99999", "etcd://tern:***@h:99999"),
            ("etcds://tern:pw@h:1", "etcds://tern:***@h:1"),
            ("etcd://tern:pw@h:1?ca=x", "etcd://tern:***@h:1?ca=x"),
            ("etcd://tern:p?w@h:1", "etcd://tern:***@h:1"),
        ] {
            let err = bad.parse::<Dsn>().unwrap_err().to_string();
            assert!(err.contains(&format!("{shown:?}")), "{bad}: {err}");
            assert!(!err.contains("pw") && !err.contains("p?") && !err.contains("w@"), "{bad}: {err}");
        }
    }
}
