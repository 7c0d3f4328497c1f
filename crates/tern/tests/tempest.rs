//! Tempest's network API tests (`tempest.api.network`, tempest 47.0.0 from target/python-venv)
//! against `tern server --auth keystone`, through a real Keystone (`common/keystone.rs`).
//!
//! The test starts Keystone, then tern on a free loopback port with a `[keystone_authtoken]`
//! config, registers tern as the `network` endpoint, creates (as the bootstrap admin) the external
//! network Tempest's `public_network_id` names, writes a Tempest workspace whose tempest.conf uses
//! dynamic credentials and lists exactly the extensions tern lists at `GET /v2.0/extensions`, runs
//! `tempest run --regex '^tempest.api.network'`, and reads the results from `stestr last --subunit`.
//! It prints a table and writes target/tempest-report.json (counts, failing and skipped tests with
//! the reason Tempest gave). It fails when a test fails that
//! `tests/data/tempest-expected-failures.txt` does not list, and when a listed one no longer fails,
//! so that file stays honest. Fails (never skips) without the virtualenv: `make pyenv` makes it.
//!
//! The run's files stay in target/tempest-run/ until the next run: the workspace (`etc/tempest.conf`,
//! `tempest.log` with every request and answer, `.stestr`), `tempest-output.log`,
//! `tern-server-N.log` and `keystone.log`. Three to six minutes on two cores (Keystone, on SQLite
//! with one worker, is most of it).
//!
//! Knobs (environment): `TERN_TEMPEST_REGEX` runs another selection (then only the expected
//! failures that ran are checked), `TERN_TEMPEST_CONCURRENCY` (default 2).

#[path = "common/keystone.rs"]
mod keystone;
#[path = "common/server.rs"]
mod server;

use anyhow::{bail, ensure, Context};
use keystone::{Keystone, KeystoneOptions};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole selection this test stands for.
const DEFAULT_REGEX: &str = "^tempest.api.network";
const DEFAULT_CONCURRENCY: &str = "2";
/// A bound on the whole `tempest run` (a full run takes about four minutes).
const RUN_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// Tempest's own bound on one test (`OS_TEST_TIMEOUT`).
const TEST_TIMEOUT_SECS: &str = "300";
/// The external network's subnet (`public_network_id`).
const PUBLIC_CIDR: &str = "172.24.4.0/24";

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn venv_bin(tool: &str) -> anyhow::Result<PathBuf> {
    let path = workspace_root().join("target/python-venv/bin").join(tool);
    ensure!(
        path.is_file(),
        "{} is missing: run `make pyenv` (scripts/python-env.sh) to install tempest, keystone and the \
         OpenStack clients into target/python-venv",
        path.display()
    );
    Ok(path)
}

/// One request as the bootstrap admin; the JSON answer, an error unless 2xx.
async fn call(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method.clone(), &url).header("X-Auth-Token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "{method} {url}: HTTP {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What the admin sets up in tern: (extension aliases, the external network's id).
async fn prepare_tern(keystone: &Keystone, tern: &str) -> anyhow::Result<(Vec<String>, String)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let token = keystone.admin_token().await?;
    let extensions =
        call(&http, &token, reqwest::Method::GET, format!("{tern}/v2.0/extensions"), None).await?;
    let mut aliases: Vec<String> = extensions["extensions"]
        .as_array()
        .context("GET /v2.0/extensions: no extensions list")?
        .iter()
        .filter_map(|e| e["alias"].as_str().map(str::to_string))
        .collect();
    aliases.sort();
    let network = json!({"network": {"name": "public", "router:external": true}});
    let network =
        call(&http, &token, reqwest::Method::POST, format!("{tern}/v2.0/networks"), Some(network)).await?;
    let network_id = network["network"]["id"].as_str().context("no network id")?.to_string();
    let subnet = json!({"subnet": {"network_id": network_id, "name": "public-subnet", "ip_version": 4,
        "cidr": PUBLIC_CIDR, "enable_dhcp": false}});
    call(&http, &token, reqwest::Method::POST, format!("{tern}/v2.0/subnets"), Some(subnet)).await?;
    Ok((aliases, network_id))
}

/// Registers tern as service `neutron` (type `network`) in Keystone's catalog, by seeding again
/// (idempotent: it adds the service and its endpoints to what the first seeding made).
fn register_network_endpoint(keystone: &Keystone, url: &str) -> anyhow::Result<()> {
    let out = Command::new(venv_bin("python")?)
        .arg(workspace_root().join("scripts/keystone.py"))
        .args(["seed", "--url", &keystone.url, "--admin-password", &keystone.admin_password])
        .args(["--network-url", url])
        .stdin(Stdio::null())
        .output()
        .context("run keystone.py seed")?;
    ensure!(
        out.status.success(),
        "keystone.py seed --network-url failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

fn tempest_conf(keystone: &Keystone, extensions: &[String], public_network_id: &str) -> String {
    format!(
        "[DEFAULT]
log_file = tempest.log
debug = True

[auth]
use_dynamic_credentials = True
create_isolated_networks = False
admin_username = admin
admin_password = {admin_password}
admin_project_name = admin
admin_domain_name = Default
tempest_roles = member

[identity]
uri_v3 = {keystone}
auth_version = v3
region = RegionOne

[identity-feature-enabled]
api_v2 = False
api_v3 = True

[service_available]
neutron = True
nova = False
cinder = False
glance = False
swift = False
horizon = False

[network]
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
public_network_id = {public_network_id}

[network-feature-enabled]
api_extensions = {extensions}
ipv6 = True
# tern accepts and ignores ipv6_ra_mode and ipv6_address_mode (it has no DHCPv6 nor RA modes).
ipv6_subnet_attributes = False

[validation]
run_validation = False
",
        admin_password = keystone.admin_password,
        keystone = keystone.url,
        extensions = extensions.join(","),
    )
}

fn tern_conf(keystone: &Keystone) -> String {
    format!(
        "[keystone_authtoken]
auth_type = password
auth_url = {}
username = tern
password = {}
project_name = service
user_domain_name = Default
project_domain_name = Default
http_connect_timeout = 30
",
        keystone.url,
        keystone::password("tern")
    )
}

/// Runs `command` to its end, killing it after `timeout`.
fn run_bounded(command: &mut Command, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let mut child = command.spawn().context("spawn")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads the last run's subunit stream into one JSON object per test: id, status (success, fail,
/// skip, xfail, uxsuccess, ...), reason (skips) and the last line of the traceback (failures).
const PARSE_SUBUNIT: &str = r#"
import json, sys
import subunit, testtools

tests = []

def on_test(t):
    if t["status"] in (None, "exists"):
        return
    details = t.get("details") or {}
    reason = details.get("reason")
    why = ""
    traceback = details.get("traceback")
    if traceback is not None:
        lines = [l for l in traceback.as_text().splitlines() if l.strip()]
        why = lines[-1] if lines else ""
    tests.append({"id": t["id"], "status": t["status"],
                  "reason": reason.as_text() if reason is not None else "", "why": why})

stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
result = testtools.StreamToDict(on_test)
result.startTestRun()
stream.run(result)
result.stopTestRun()
print(json.dumps(tests))
"#;

/// A test id without Tempest's attribute suffix: `...test_x[id-UUID,smoke]` → `...test_x`.
fn plain_id(id: &str) -> String {
    match (id.find('['), id.ends_with(']')) {
        (Some(at), true) => id[..at].to_string(),
        _ => id.to_string(),
    }
}

#[derive(Debug)]
struct TestResult {
    id: String,
    status: String,
    reason: String,
    why: String,
}

fn read_results(workspace: &Path) -> anyhow::Result<Vec<TestResult>> {
    let last = Command::new(venv_bin("stestr")?)
        .args(["last", "--subunit"])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .output()
        .context("run stestr last --subunit")?;
    ensure!(
        !last.stdout.is_empty(),
        "stestr last --subunit printed nothing ({}): {}",
        last.status,
        String::from_utf8_lossy(&last.stderr)
    );
    let mut parse = Command::new(venv_bin("python")?)
        .args(["-c", PARSE_SUBUNIT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run the subunit parser")?;
    let mut stdin = parse.stdin.take().context("parser stdin")?;
    let input = last.stdout;
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = parse.wait_with_output()?;
    writer.join().expect("writer thread")?;
    ensure!(out.status.success(), "the subunit parser failed: {}", String::from_utf8_lossy(&out.stderr));
    let tests: Vec<Value> = serde_json::from_slice(&out.stdout).context("the subunit parser's JSON")?;
    Ok(tests
        .iter()
        .map(|t| TestResult {
            id: plain_id(t["id"].as_str().unwrap_or_default()),
            status: t["status"].as_str().unwrap_or_default().to_string(),
            reason: t["reason"].as_str().unwrap_or_default().to_string(),
            why: t["why"].as_str().unwrap_or_default().to_string(),
        })
        .collect())
}

/// The expected failures: test id → reason. Every line is `ID  # reason`; blank lines and lines
/// starting with `#` are comments.
fn expected_failures() -> anyhow::Result<BTreeMap<String, String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tempest-expected-failures.txt");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut expected = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, reason)) = line.split_once('#') else {
            bail!("{}:{}: no `# reason` after the test id: {line}", path.display(), n + 1);
        };
        let (id, reason) = (id.trim(), reason.trim());
        ensure!(!id.is_empty() && !reason.is_empty(), "{}:{}: want `ID  # reason`", path.display(), n + 1);
        ensure!(
            expected.insert(plain_id(id), reason.to_string()).is_none(),
            "{}:{}: {id} is listed twice",
            path.display(),
            n + 1
        );
    }
    Ok(expected)
}

fn is_failure(status: &str) -> bool {
    !matches!(status, "success" | "skip" | "xfail")
}

#[test]
fn tempest_network_api_tests_pass_against_tern() -> anyhow::Result<()> {
    let tempest = venv_bin("tempest")?;
    let regex = std::env::var("TERN_TEMPEST_REGEX").unwrap_or_else(|_| DEFAULT_REGEX.to_string());
    let concurrency =
        std::env::var("TERN_TEMPEST_CONCURRENCY").unwrap_or_else(|_| DEFAULT_CONCURRENCY.to_string());
    let expected = expected_failures()?;
    let started = Instant::now();

    let run_dir = workspace_root().join("target/tempest-run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).with_context(|| format!("remove {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)?;

    // One worker: Keystone runs on SQLite, and concurrent writers from several worker processes fail
    // now and then with "database is locked" (a 500 to Tempest's credential cleanup).
    let keystone = Keystone::start(KeystoneOptions { workers: 1, ..KeystoneOptions::default() })?;
    let tern_conf_path = run_dir.join("tern.conf");
    std::fs::write(&tern_conf_path, tern_conf(&keystone))?;
    let dsn = format!("redb:{}", run_dir.join("nb.redb").display());
    let config_arg = tern_conf_path.to_str().context("the run directory is not UTF-8")?;
    let tern = server::Server::start_with(&dsn, &["--auth", "keystone", "--config", config_arg], &run_dir);
    register_network_endpoint(&keystone, &tern.endpoint)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (extensions, public_network_id) = runtime.block_on(prepare_tern(&keystone, &tern.endpoint))?;
    eprintln!(
        "tempest: keystone {} and tern {} ready in {:.1?}; tern lists {} extensions: {}",
        keystone.url,
        tern.endpoint,
        started.elapsed(),
        extensions.len(),
        extensions.join(",")
    );

    // The workspace, registered in a workspace file of its own; HOME moved too, as `tempest init`
    // makes ~/.tempest/etc.
    let workspace = run_dir.join("workspace");
    let home = run_dir.join("home");
    std::fs::create_dir_all(&home)?;
    let init = Command::new(&tempest)
        .env("HOME", &home)
        .arg("init")
        .arg("--workspace-path")
        .arg(run_dir.join("workspaces.yaml"))
        .arg(&workspace)
        .stdin(Stdio::null())
        .output()
        .context("run tempest init")?;
    ensure!(init.status.success(), "tempest init failed: {}", String::from_utf8_lossy(&init.stderr));
    std::fs::write(
        workspace.join("etc/tempest.conf"),
        tempest_conf(&keystone, &extensions, &public_network_id),
    )?;

    let output_path = run_dir.join("tempest-output.log");
    let output = File::create(&output_path)?;
    let run_started = Instant::now();
    eprintln!(
        "tempest: tempest run --regex '{regex}' --concurrency {concurrency} (output: {})",
        output_path.display()
    );
    let status = run_bounded(
        Command::new(&tempest)
            .args(["run", "--regex", &regex, "--concurrency", &concurrency])
            .current_dir(&workspace)
            .env("HOME", &home)
            .env("OS_TEST_TIMEOUT", TEST_TIMEOUT_SECS)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output),
        RUN_TIMEOUT,
    )
    .context("tempest run")?;
    let run_secs = run_started.elapsed().as_secs_f64();
    let _ = std::fs::copy(keystone.dir().join("keystone.log"), run_dir.join("keystone.log"));
    drop(tern);
    drop(keystone);

    let results = read_results(&workspace).with_context(|| {
        let text = std::fs::read_to_string(&output_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        format!(
            "tempest run ended ({status}) without results; the end of its output:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;
    ensure!(!results.is_empty(), "tempest ran no test (see {})", output_path.display());

    let count = |f: &dyn Fn(&str) -> bool| results.iter().filter(|t| f(&t.status)).count();
    let passed = count(&|s| s == "success" || s == "xfail");
    let skipped = count(&|s| s == "skip");
    let failed = count(&is_failure);
    let failing: Vec<&TestResult> = results.iter().filter(|t| is_failure(&t.status)).collect();
    let failing_ids: BTreeSet<&str> = failing.iter().map(|t| t.id.as_str()).collect();
    let ran_ids: BTreeSet<&str> = results.iter().map(|t| t.id.as_str()).collect();
    let unexpected: Vec<&&TestResult> = failing.iter().filter(|t| !expected.contains_key(&t.id)).collect();
    // An expected failure that does not fail: in the full run, whether it ran or not (a class's
    // tearDownClass only shows up when it fails); in a narrower one, only if it ran.
    let full_run = regex == DEFAULT_REGEX;
    let no_longer_failing: Vec<&String> = expected
        .keys()
        .filter(|id| !failing_ids.contains(id.as_str()) && (full_run || ran_ids.contains(id.as_str())))
        .collect();

    let report = json!({
        "regex": regex,
        "concurrency": concurrency,
        "seconds": (run_secs * 10.0).round() / 10.0,
        "ran": results.len(),
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "failing": failing.iter().map(|t| json!({
            "id": t.id, "status": t.status, "expected": expected.get(&t.id), "why": t.why,
        })).collect::<Vec<_>>(),
        "unexpected_failures": unexpected.iter().map(|t| &t.id).collect::<Vec<_>>(),
        "expected_failures_not_failing": no_longer_failing,
        "skipped_tests": results.iter().filter(|t| t.status == "skip").map(|t| json!({
            "id": t.id, "reason": t.reason,
        })).collect::<Vec<_>>(),
        "workspace": workspace,
    });
    let report_path = workspace_root().join("target/tempest-report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)?;

    println!("\ntempest {regex} against tern (concurrency {concurrency}): {run_secs:.0} s");
    println!("{:>6} {:>7} {:>7} {:>8}", "ran", "passed", "failed", "skipped");
    println!("{:>6} {:>7} {:>7} {:>8}", results.len(), passed, failed, skipped);
    if !failing.is_empty() {
        println!("\n{:<10} test", "failing");
        for t in &failing {
            let tag = if expected.contains_key(&t.id) { "expected" } else { "NEW" };
            println!("{tag:<10} {}\n{:<10}   {}", t.id, "", t.why.chars().take(200).collect::<String>());
        }
    }
    println!("\nreport: {}; logs: {}", report_path.display(), run_dir.display());

    let mut problems = Vec::new();
    if !unexpected.is_empty() {
        problems.push(format!(
            "{} test(s) failed that tests/data/tempest-expected-failures.txt does not list:\n  {}",
            unexpected.len(),
            unexpected.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join("\n  ")
        ));
    }
    if !no_longer_failing.is_empty() {
        problems.push(format!(
            "{} expected failure(s) no longer fail: remove them from tests/data/tempest-expected-failures.txt:\n  {}",
            no_longer_failing.len(),
            no_longer_failing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        ));
    }
    ensure!(
        problems.is_empty(),
        "{}\n(tempest's log with every request: {})",
        problems.join("\n"),
        workspace.join("tempest.log").display()
    );
    Ok(())
}
