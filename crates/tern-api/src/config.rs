//! `tern server --config FILE`: an INI file with the sections operators know from Neutron's
//! `neutron.conf`. `[keystone_authtoken]` (keystonemiddleware's keys) says how tokens are
//! validated; `[nova]` how Nova is told about ports. Keys tern does not use (`memcached_servers`,
//! `www_authenticate_uri`, ...) are accepted and ignored so an existing section can be copied
//! as it is; a missing key, a bad value or an auth type tern does not speak is an error naming
//! the file, the section and the key.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::auth::keystone::{Credentials, ValidatorConfig};

/// What the file configures.
#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    /// `[keystone_authtoken]`, if present.
    pub keystone: Option<ValidatorConfig>,
    /// `[nova]`, if present.
    pub nova: Option<NovaConfig>,
}

/// Where Nova is and how tern authenticates to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaConfig {
    /// Password credentials (`auth_type = password`, the default); `None` with `auth_type = none`
    /// (then `endpoint_override` is required and no token is sent: a test receiver).
    pub credentials: Option<Credentials>,
    /// The catalog's region to take the compute endpoint from (any region if unset).
    pub region_name: Option<String>,
    /// The catalog interface (`endpoint_type` in Neutron; `public` by default).
    pub interface: String,
    /// The compute endpoint to use instead of the catalog's.
    pub endpoint_override: Option<String>,
    /// Neutron's `send_events_interval`: how long events gather before one request carries them
    /// (unset: the notifier's default, [`crate::nova::NovaOptions`]).
    pub send_events_interval: Option<Duration>,
}

type Section = BTreeMap<String, String>;

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        FileConfig::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        let ini = ini::Ini::load_from_str(text).map_err(|e| anyhow!("not an INI file: {e}"))?;
        let section = |name: &str| -> Option<Section> {
            ini.section(Some(name)).map(|s| s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        let keystone = section("keystone_authtoken").map(|s| keystone(&s)).transpose()?;
        let nova = section("nova").map(|s| nova(&s)).transpose()?;
        Ok(FileConfig { keystone, nova })
    }
}

fn keystone(s: &Section) -> anyhow::Result<ValidatorConfig> {
    let at = "[keystone_authtoken]";
    check_auth_type(s, at, &["password"])?;
    let mut c = ValidatorConfig::new(credentials(s, at)?);
    if let Some(v) = s.get("token_cache_time") {
        // keystonemiddleware: -1 disables the cache; tern keeps a validation at least 0 s.
        let secs: i64 =
            v.parse().map_err(|_| anyhow!("{at} token_cache_time: '{v}' is not a number of seconds"))?;
        c.cache_time = Duration::from_secs(secs.max(0) as u64);
    }
    if let Some(v) = s.get("token_cache_size") {
        c.cache_size = v
            .parse::<NonZeroUsize>()
            .map_err(|_| anyhow!("{at} token_cache_size: '{v}' is not a positive number"))?;
    }
    if let Some(v) = s.get("http_connect_timeout") {
        let secs: u64 =
            v.parse().map_err(|_| anyhow!("{at} http_connect_timeout: '{v}' is not a number of seconds"))?;
        c.timeout = Duration::from_secs(secs.max(1));
    }
    Ok(c)
}

fn nova(s: &Section) -> anyhow::Result<NovaConfig> {
    let at = "[nova]";
    let auth_type = check_auth_type(s, at, &["password", "none"])?;
    let endpoint_override = s.get("endpoint_override").cloned();
    let credentials = match auth_type {
        "none" => {
            if endpoint_override.is_none() {
                bail!("{at} auth_type = none needs endpoint_override (there is no catalog to find Nova in)");
            }
            None
        }
        _ => Some(credentials(s, at)?),
    };
    let send_events_interval = match s.get("send_events_interval") {
        None => None,
        Some(v) => {
            let secs: f64 = v
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| anyhow!("{at} send_events_interval: '{v}' is not a number of seconds"))?;
            Some(Duration::from_secs_f64(secs))
        }
    };
    let interface = s.get("endpoint_type").or(s.get("interface")).cloned().unwrap_or_else(|| "public".into());
    let interface = interface.trim_end_matches("URL").to_string(); // Neutron also takes publicURL
    if !matches!(interface.as_str(), "public" | "internal" | "admin") {
        bail!("{at} endpoint_type: '{interface}' is not public, internal or admin");
    }
    Ok(NovaConfig {
        credentials,
        region_name: s.get("region_name").cloned(),
        interface,
        endpoint_override,
        send_events_interval,
    })
}

fn check_auth_type<'a>(s: &'a Section, at: &str, allowed: &[&str]) -> anyhow::Result<&'a str> {
    let t = s.get("auth_type").map_or("password", String::as_str);
    if !allowed.contains(&t) {
        bail!("{at} auth_type = {t}: tern speaks {}", allowed.join(" or "));
    }
    Ok(t)
}

fn credentials(s: &Section, at: &str) -> anyhow::Result<Credentials> {
    let need = |k: &str| -> anyhow::Result<String> {
        match s.get(k) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => bail!("{at} needs {k}"),
        }
    };
    let domain =
        |k: &str| s.get(k).or(s.get(&k.replace("_name", "_id"))).cloned().unwrap_or_else(|| "Default".into());
    let auth_url = need("auth_url")?;
    if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
        bail!("{at} auth_url: '{auth_url}' is not an http:// or https:// URL");
    }
    Ok(Credentials {
        auth_url,
        username: need("username")?,
        password: need("password")?,
        project_name: need("project_name")?,
        user_domain_name: domain("user_domain_name"),
        project_domain_name: domain("project_domain_name"),
        cafile: s.get("cafile").filter(|f| !f.is_empty()).map(std::path::PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEUTRON_LIKE: &str = "
[DEFAULT]
debug = true

[keystone_authtoken]
www_authenticate_uri = http://keystone:5000
auth_url = http://keystone:5000
memcached_servers = localhost:11211
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = secret
token_cache_time = 30

[nova]
auth_url = http://keystone:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
region_name = RegionOne
project_name = service
username = nova
password = nova-secret
";

    #[test]
    fn a_neutron_conf_section_reads_as_it_is() {
        let c = FileConfig::parse(NEUTRON_LIKE).unwrap();
        let k = c.keystone.unwrap();
        assert_eq!(k.service.username, "neutron");
        assert_eq!(k.service.project_name, "service");
        assert_eq!(k.cache_time, Duration::from_secs(30));
        let n = c.nova.unwrap();
        assert_eq!(n.credentials.unwrap().username, "nova");
        assert_eq!(n.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(n.interface, "public");
        assert_eq!(n.send_events_interval, None);
    }

    #[test]
    fn errors_name_section_and_key() {
        let e = FileConfig::parse("[keystone_authtoken]\nauth_url = http://k\nusername = u\n").unwrap_err();
        assert_eq!(e.to_string(), "[keystone_authtoken] needs password");
        let e = FileConfig::parse(&NEUTRON_LIKE.replace("token_cache_time = 30", "token_cache_time = soon"))
            .unwrap_err();
        assert!(e.to_string().contains("token_cache_time: 'soon'"), "{e}");
        let e = FileConfig::parse("[keystone_authtoken]\nauth_type = v3oidcpassword\n").unwrap_err();
        assert!(e.to_string().contains("auth_type = v3oidcpassword"), "{e}");
        let e = FileConfig::parse("[nova]\nauth_type = none\n").unwrap_err();
        assert!(e.to_string().contains("endpoint_override"), "{e}");
        let n = FileConfig::parse("[nova]\nauth_type = none\nendpoint_override = http://127.0.0.1:1/v2.1\n")
            .unwrap()
            .nova
            .unwrap();
        assert_eq!(n.credentials, None);
        assert!(FileConfig::parse("[keystone_authtoken\n").is_err());
        assert!(FileConfig::parse("").unwrap().keystone.is_none());
    }
}
