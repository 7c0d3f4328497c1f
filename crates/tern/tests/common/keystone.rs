//! A real Keystone for the tests that need identities and tokens: `scripts/keystone.py` run with the
//! Python of `target/python-venv` (made by `scripts/python-env.sh`, `make pyenv`) bootstraps it under
//! a temporary directory, serves it with gunicorn on a free loopback port and seeds the identities
//! below; dropping the [`Keystone`] stops it by its pidfile. The server also stops by itself once this
//! test process is gone (`--watch-pid`), so a killed test leaves nothing running.
//!
//! Seeded (all in domain `default`, passwords `<user>-secret`, see [`password`]): project `service`
//! with users `tern` and `nova` (roles admin and service), projects `alpha` and `beta` with users
//! `<project>-member` (role member) and `<project>-reader` (role reader); the bootstrap's `admin` user
//! (role admin on project `admin` and on the system) has [`KeystoneOptions::admin_password`].
//!
//! Keystone runs without a cache on SQLite: every authenticated request costs it about a quarter of a
//! second on a small machine (a token validation about three quarters), so tests should not validate
//! in tight loops. Without the virtualenv, starting fails with a message saying to run `make pyenv`.

#![allow(dead_code)]

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How often to retry with a fresh port when another process took ours between probe and bind.
const START_ATTEMPTS: usize = 3;

/// What to start: every field has a default ([`KeystoneOptions::default`]).
#[derive(Clone, Debug)]
pub struct KeystoneOptions {
    /// The bootstrap admin's password (user `admin`, project `admin`).
    pub admin_password: String,
    /// `[token] expiration`, seconds.
    pub token_expiration: u64,
    /// Registers service `neutron` (type `network`) with this URL for its public, internal and admin
    /// endpoints in RegionOne.
    pub network_url: Option<String>,
    /// Registers service `nova` (type `compute`) the same way.
    pub compute_url: Option<String>,
    /// gunicorn workers (processes).
    pub workers: u32,
}

impl Default for KeystoneOptions {
    fn default() -> Self {
        KeystoneOptions {
            admin_password: "admin-secret".to_string(),
            token_expiration: 3600,
            network_url: None,
            compute_url: None,
            workers: 2,
        }
    }
}

/// A running Keystone; dropping it stops it (by the pidfile in its directory) and removes the directory.
pub struct Keystone {
    /// `http://127.0.0.1:PORT/v3`.
    pub url: String,
    pub admin_password: String,
    /// The pid of the gunicorn master.
    pub pid: u32,
    /// What `keystone.py seed` printed: `{"projects": {name: id}, "users": {name: id}, "roles": {name:
    /// id}, "services": {name: {"id", "type", "url"}}}`.
    pub seeded: Value,
    dir: tempfile::TempDir,
    python: PathBuf,
    client: reqwest::Client,
}

/// The password the seeding gives `user`.
pub fn password(user: &str) -> String {
    format!("{user}-secret")
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn script() -> PathBuf {
    workspace_root().join("scripts/keystone.py")
}

/// The virtualenv's Python, once it is known to hold keystone and gunicorn.
fn venv_python() -> anyhow::Result<PathBuf> {
    let bin = workspace_root().join("target/python-venv/bin");
    for tool in ["python", "keystone-manage", "gunicorn"] {
        if !bin.join(tool).is_file() {
            bail!(
                "{} is missing: run `make pyenv` (scripts/python-env.sh) to install keystone, gunicorn and \
                 the OpenStack clients into target/python-venv",
                bin.join(tool).display()
            );
        }
    }
    Ok(bin.join("python"))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `keystone.py ARGS` and returns the JSON of its last stdout line.
fn run_script(python: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(python)
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} {}", python.display(), script().display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("keystone.py {} failed ({}):\n{stderr}{stdout}", args[0], out.status);
    }
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line)
        .with_context(|| format!("keystone.py {} printed no JSON line:\n{stdout}\n{stderr}", args[0]))
}

impl Keystone {
    /// Starts and seeds a Keystone (a couple of seconds with the template database that the first start
    /// on a machine makes under target/keystone-template, about 20 s for that first one). Blocking.
    pub fn start(opts: KeystoneOptions) -> anyhow::Result<Keystone> {
        let python = venv_python()?;
        let started = Instant::now();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Keystone::start_once(&python, &opts) {
                Ok(keystone) => {
                    eprintln!(
                        "keystone: {} (pid {}) started and seeded in {:.1?}",
                        keystone.url,
                        keystone.pid,
                        started.elapsed()
                    );
                    return Ok(keystone);
                }
                Err(e) if format!("{e:#}").contains("is in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!("keystone did not start after {START_ATTEMPTS} attempts")))
    }

    fn start_once(python: &Path, opts: &KeystoneOptions) -> anyhow::Result<Keystone> {
        let dir = tempfile::Builder::new()
            .prefix("tern-keystone-")
            .tempdir()
            .context("make a temporary directory")?;
        let dir_arg = dir.path().to_str().context("temporary directory path is not UTF-8")?.to_string();
        let port = free_port()?.to_string();
        let expiration = opts.token_expiration.to_string();
        let workers = opts.workers.to_string();
        let watch = std::process::id().to_string();
        let started = run_script(
            python,
            &[
                "start",
                "--dir",
                &dir_arg,
                "--port",
                &port,
                "--admin-password",
                &opts.admin_password,
                "--token-expiration",
                &expiration,
                "--workers",
                &workers,
                "--watch-pid",
                &watch,
            ],
        )?;
        let url = started["url"].as_str().context("keystone.py start printed no url")?.to_string();
        let pid = started["pid"].as_u64().context("keystone.py start printed no pid")? as u32;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("build the HTTP client")?;
        // From here on, dropping `keystone` stops the server.
        let mut keystone = Keystone {
            url,
            admin_password: opts.admin_password.clone(),
            pid,
            seeded: Value::Null,
            dir,
            python: python.to_path_buf(),
            client,
        };
        let mut seed = vec!["seed", "--url", &keystone.url, "--admin-password", &opts.admin_password];
        if let Some(url) = &opts.network_url {
            seed.extend(["--network-url", url]);
        }
        if let Some(url) = &opts.compute_url {
            seed.extend(["--compute-url", url]);
        }
        let seeded = run_script(python, &seed)
            .map_err(|e| anyhow!("{e:#}\nkeystone's log:\n{}", keystone.log_tail()))?;
        keystone.seeded = seeded;
        Ok(keystone)
    }

    /// The directory holding keystone.conf, the database, keystone.log and access.log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last 60 lines of keystone.log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("keystone.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The id of a seeded project (`service`, `alpha`, `beta`, `admin`).
    pub fn project_id(&self, name: &str) -> String {
        self.seeded["projects"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no seeded project {name}"))
            .to_string()
    }

    /// The id of a seeded user (`tern`, `nova`, `alpha-member`, ..., `admin`).
    pub fn user_id(&self, name: &str) -> String {
        self.seeded["users"][name].as_str().unwrap_or_else(|| panic!("no seeded user {name}")).to_string()
    }

    /// POST /v3/auth/tokens with `scope`; returns the token and the token body.
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
        scope: Value,
    ) -> anyhow::Result<(String, Value)> {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": scope,
        }});
        let response = self
            .client
            .post(format!("{}/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {}/auth/tokens", self.url))?;
        let status = response.status();
        let token =
            response.headers().get("X-Subject-Token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = response.text().await?;
        if status.as_u16() != 201 {
            bail!("authenticating {user}: HTTP {status}: {text}");
        }
        let token = token.context("no X-Subject-Token in keystone's answer")?;
        Ok((token, serde_json::from_str(&text)?))
    }

    /// A token of `user` scoped to `project` (both in domain `default`).
    pub async fn token(&self, user: &str, password: &str, project: &str) -> anyhow::Result<String> {
        Ok(self.token_with_body(user, password, project).await?.0)
    }

    /// A project-scoped token and its body (`{"token": {"roles", "project", "user", "catalog", ...}}`).
    pub async fn token_with_body(
        &self,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<(String, Value)> {
        let scope = json!({"project": {"name": project, "domain": {"id": "default"}}});
        self.authenticate(user, password, scope).await
    }

    /// A system-scoped token (`{"system": {"all": true}}`; the bootstrap admin has a system role).
    pub async fn system_token(&self, user: &str, password: &str) -> anyhow::Result<String> {
        Ok(self.authenticate(user, password, json!({"system": {"all": true}})).await?.0)
    }

    /// A token of the bootstrap admin on project `admin`.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        self.token("admin", &self.admin_password, "admin").await
    }

    /// GET /v3/auth/tokens: `Some(body)` when `subject` is valid, `None` on 404 (invalid, expired or
    /// revoked), an error otherwise (for example 403 when `auth_token` may not validate tokens).
    pub async fn validate(&self, auth_token: &str, subject: &str) -> anyhow::Result<Option<Value>> {
        let response = self
            .client
            .get(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", auth_token)
            .header("X-Subject-Token", subject)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        match status.as_u16() {
            200 => Ok(Some(serde_json::from_str(&text)?)),
            404 => Ok(None),
            _ => bail!("GET /v3/auth/tokens: HTTP {status}: {text}"),
        }
    }

    /// DELETE /v3/auth/tokens: revokes `token` (`auth_token` is an admin's, or `token` itself).
    pub async fn revoke(&self, auth_token: &str, token: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .delete(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", auth_token)
            .header("X-Subject-Token", token)
            .send()
            .await?;
        let status = response.status();
        if status.as_u16() != 204 {
            bail!("DELETE /v3/auth/tokens: HTTP {status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// Stops the server now (Drop does it too); errors when it does not stop.
    pub fn stop(&self) -> anyhow::Result<()> {
        let dir = self.dir.path().to_str().context("temporary directory path is not UTF-8")?;
        let out = Command::new(&self.python)
            .arg(script())
            .args(["stop", "--dir", dir])
            .stdin(Stdio::null())
            .output()
            .context("run keystone.py stop")?;
        if !out.status.success() {
            bail!("keystone.py stop failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("keystone: {e:#}");
        }
    }
}
