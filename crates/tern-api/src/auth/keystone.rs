//! Keystone v3 as keystonemiddleware uses it: tern holds a service token (password
//! authentication, project scope, renewed before it expires), validates each user token with
//! `GET /v3/auth/tokens` (`X-Subject-Token`), and caches each validation in a bounded cache until
//! the token expires or `token_cache_time` passes, whichever is first: a revoked token is refused
//! at most that long after its revocation. A Keystone that does not answer is an error (the API
//! answers 503), never a pass.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;
use serde_json::json;

use super::Caller;

/// Password credentials for a project-scoped token: the keys of Neutron's `[keystone_authtoken]`
/// and `[nova]` sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Keystone's URL, with or without its `/v3` suffix.
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// A PEM file of CA certificates to trust for an `https://` Keystone, beside the system's
    /// (keystonemiddleware's `cafile`).
    pub cafile: Option<std::path::PathBuf>,
}

impl Credentials {
    /// `auth_url` ending in `/v3`.
    fn v3(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_string()
        } else {
            format!("{base}/v3")
        }
    }
}

/// How token validation runs.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    pub service: Credentials,
    /// keystonemiddleware's `token_cache_time`: how long a validation is trusted (default 300 s).
    pub cache_time: Duration,
    /// How many validations the cache holds (the least recently used go first).
    pub cache_size: NonZeroUsize,
    /// keystonemiddleware's `http_request_max_retries` is 3; tern tries once more after
    /// renewing its own token, and gives up on Keystone after this timeout per request.
    pub timeout: Duration,
}

impl ValidatorConfig {
    pub fn new(service: Credentials) -> ValidatorConfig {
        ValidatorConfig {
            service,
            cache_time: Duration::from_secs(300),
            cache_size: NonZeroUsize::new(10_000).expect("non-zero"),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A token and the catalog it came with.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    /// When Keystone stops accepting it.
    pub expires: SystemTime,
    pub catalog: Vec<CatalogService>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub url: String,
}

impl Token {
    /// The URL of the `interface` endpoint of the service of type `kind` in `region` (any region
    /// when `None`).
    pub fn endpoint(&self, kind: &str, interface: &str, region: Option<&str>) -> Option<&str> {
        self.catalog.iter().filter(|s| s.kind == kind).flat_map(|s| &s.endpoints).find_map(|e| {
            let in_region =
                region.is_none_or(|r| e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r));
            (e.interface == interface && in_region).then_some(e.url.as_str())
        })
    }
}

/// A password session: a project-scoped token for `credentials`, fetched on first use and again
/// a minute before it expires (or when Keystone says it is no longer valid).
pub struct Session {
    http: reqwest::Client,
    credentials: Credentials,
    /// The token and when it was fetched.
    token: tokio::sync::Mutex<Option<(Token, SystemTime)>>,
}

/// An HTTP(S) client trusting the system's CAs and those of `cafile`.
pub fn http_client(cafile: Option<&std::path::Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder().timeout(timeout).use_rustls_tls();
    if let Some(path) = cafile {
        let pem =
            std::fs::read(path).with_context(|| format!("cannot read the cafile {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("the cafile {} holds no PEM certificate", path.display()))?;
        if certs.is_empty() {
            bail!("the cafile {} holds no PEM certificate", path.display());
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().context("cannot build an HTTP client")
}

/// Renew a token this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

impl Session {
    pub fn new(credentials: Credentials, timeout: Duration) -> anyhow::Result<Session> {
        let http = http_client(credentials.cafile.as_deref(), timeout)?;
        Ok(Session { http, credentials, token: tokio::sync::Mutex::new(None) })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A valid token (cached, or fetched now).
    pub async fn token(&self) -> anyhow::Result<Token> {
        let mut cur = self.token.lock().await;
        if let Some((t, fetched)) = cur.as_ref() {
            // Renewed a minute before it expires, or half-way through a shorter life.
            let life = t.expires.duration_since(*fetched).unwrap_or_default();
            if t.expires > SystemTime::now() + RENEW_MARGIN.min(life / 2) {
                return Ok(t.clone());
            }
        }
        let fetched = SystemTime::now();
        let t = self.issue().await?;
        *cur = Some((t.clone(), fetched));
        Ok(t)
    }

    /// Forgets the token (Keystone refused it): the next [`Session::token`] fetches another.
    pub async fn invalidate(&self, id: &str) {
        let mut cur = self.token.lock().await;
        if cur.as_ref().is_some_and(|(t, _)| t.id == id) {
            *cur = None;
        }
    }

    async fn issue(&self) -> anyhow::Result<Token> {
        let c = &self.credentials;
        let url = format!("{}/auth/tokens", c.v3());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "password": c.password, "domain": {"name": c.user_domain_name}}}},
            "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain_name}}},
        }});
        let resp =
            self.http.post(&url).json(&body).send().await.with_context(|| format!("Keystone at {url}"))?;
        let status = resp.status();
        if status.is_client_error() {
            return Err(anyhow!(Refused(format!(
                "Keystone at {url} refused the credentials of user {} in project {}: {status}",
                c.username, c.project_name
            ))));
        }
        if !status.is_success() {
            bail!("Keystone at {url} answered {status} to a token request");
        }
        let id = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("Keystone at {url} answered without X-Subject-Token"))?;
        let body: TokenBody =
            resp.json().await.with_context(|| format!("Keystone at {url}: bad token body"))?;
        Ok(Token { id, expires: parse_time(&body.token.expires_at)?, catalog: body.token.catalog })
    }
}

/// Keystone refused a session's credentials (rather than being unreachable).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether `e` is Keystone refusing credentials (a configuration error), not an outage.
pub fn is_refusal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Refused>().is_some()
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    #[serde(default)]
    catalog: Vec<CatalogService>,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    user: Option<Named>,
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(default)]
    system: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
}

#[derive(Deserialize)]
struct Role {
    name: String,
}

fn parse_time(s: &str) -> anyhow::Result<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).with_context(|| format!("bad Keystone time {s:?}"))
}

struct Cached {
    caller: Caller,
    /// Trusted until then (token expiry or `cache_time`, whichever is first).
    until: Instant,
}

/// Validates user tokens against Keystone with tern's service token, caching validations.
pub struct Validator {
    session: Session,
    cache_time: Duration,
    cache: Mutex<lru::LruCache<String, Cached>>,
}

impl Validator {
    pub fn new(config: ValidatorConfig) -> anyhow::Result<Validator> {
        Ok(Validator {
            session: Session::new(config.service, config.timeout)?,
            cache_time: config.cache_time,
            cache: Mutex::new(lru::LruCache::new(config.cache_size)),
        })
    }

    /// Fetches tern's service token now: a server started with wrong credentials says so at once.
    pub async fn check(&self) -> anyhow::Result<()> {
        self.session.token().await.map(|_| ())
    }

    /// The caller `token` stands for; `None` if Keystone says it is not valid (unknown, expired,
    /// revoked); an error if Keystone cannot tell.
    pub async fn validate(&self, token: &str) -> anyhow::Result<Option<Caller>> {
        if let Some(c) = self.cached(token) {
            return Ok(Some(c));
        }
        let mut renewed = false;
        loop {
            let service = self.session.token().await?;
            let url = format!("{}/auth/tokens", self.session.credentials().v3());
            let resp = self
                .session
                .http
                .get(&url)
                .header("X-Auth-Token", &service.id)
                .header("X-Subject-Token", token)
                .send()
                .await
                .with_context(|| format!("Keystone at {url}"))?;
            match resp.status().as_u16() {
                200 => {
                    let body: TokenBody =
                        resp.json().await.with_context(|| format!("Keystone at {url}: bad token body"))?;
                    let expires = parse_time(&body.token.expires_at)?;
                    let caller = Caller {
                        project_id: body.token.project.map(|p| p.id).unwrap_or_default(),
                        user_id: body.token.user.map(|u| u.id).unwrap_or_default(),
                        roles: body.token.roles.into_iter().map(|r| r.name.to_ascii_lowercase()).collect(),
                        system: body
                            .token
                            .system
                            .is_some_and(|s| s.get("all").and_then(|v| v.as_bool()) == Some(true)),
                    };
                    let left = expires.duration_since(SystemTime::now()).unwrap_or_default();
                    if left.is_zero() {
                        return Ok(None);
                    }
                    let until = Instant::now() + left.min(self.cache_time);
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.put(token.to_string(), Cached { caller: caller.clone(), until });
                    }
                    return Ok(Some(caller));
                }
                404 => return Ok(None),
                401 | 403 if !renewed => {
                    // tern's own token was refused (revoked, or Keystone's keys rotated): renew once.
                    self.session.invalidate(&service.id).await;
                    renewed = true;
                }
                s => bail!("Keystone at {url} answered {s} to a token validation"),
            }
        }
    }

    fn cached(&self, token: &str) -> Option<Caller> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(token) {
            Some(c) if c.until > Instant::now() => Some(c.caller.clone()),
            Some(_) => {
                cache.pop(token);
                None
            }
            None => None,
        }
    }
}

/// Nova as the `[nova]` section finds it: tern's token from the section's credentials, the
/// compute endpoint from that token's catalog (`region_name`, `endpoint_type`) unless
/// `endpoint_override` names it.
pub struct CatalogTarget {
    session: Session,
    interface: String,
    region: Option<String>,
    endpoint_override: Option<String>,
}

impl CatalogTarget {
    pub fn new(
        credentials: Credentials,
        interface: String,
        region: Option<String>,
        endpoint_override: Option<String>,
    ) -> anyhow::Result<CatalogTarget> {
        Ok(CatalogTarget {
            session: Session::new(credentials, Duration::from_secs(30))?,
            interface,
            region,
            endpoint_override,
        })
    }
}

#[async_trait::async_trait]
impl crate::nova::NovaTarget for CatalogTarget {
    async fn endpoint(&self) -> anyhow::Result<(String, Option<String>)> {
        let token = self.session.token().await?;
        let url = match &self.endpoint_override {
            Some(u) => u.clone(),
            None => token
                .endpoint("compute", &self.interface, self.region.as_deref())
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "Keystone's catalog has no {} compute endpoint{}",
                        self.interface,
                        self.region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default()
                    )
                })?,
        };
        Ok((url, Some(token.id)))
    }

    async fn refused(&self, token: &str) {
        self.session.invalidate(token).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_times_parse() {
        let t = parse_time("2026-12-06T18:35:55.000000Z").unwrap();
        let u = parse_time("2026-12-06T18:35:56Z").unwrap();
        assert_eq!(u.duration_since(t).unwrap(), Duration::from_secs(1));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn catalog_lookup() {
        let t = Token {
            id: "t".into(),
            expires: SystemTime::now(),
            catalog: serde_json::from_value(json!([
                {"type": "compute", "endpoints": [
                    {"interface": "internal", "region_id": "R2", "url": "http://b"},
                    {"interface": "public", "region_id": "RegionOne", "url": "http://a"}]},
                {"type": "identity", "endpoints": []}]))
            .unwrap(),
        };
        assert_eq!(t.endpoint("compute", "public", Some("RegionOne")), Some("http://a"));
        assert_eq!(t.endpoint("compute", "internal", None), Some("http://b"));
        assert_eq!(t.endpoint("compute", "internal", Some("RegionOne")), None);
        assert_eq!(t.endpoint("network", "public", None), None);
    }

    #[test]
    fn v3_url() {
        let mut c = Credentials {
            auth_url: "http://k:5000".into(),
            username: String::new(),
            password: String::new(),
            project_name: String::new(),
            user_domain_name: String::new(),
            project_domain_name: String::new(),
            cafile: None,
        };
        assert_eq!(c.v3(), "http://k:5000/v3");
        c.auth_url = "http://k:5000/v3/".into();
        assert_eq!(c.v3(), "http://k:5000/v3");
    }
}
