//! The Keystone harness itself (`common/keystone.rs`): a real Keystone from target/python-venv is
//! started and seeded, hands out project-scoped tokens to the seeded users, lets a service user
//! validate them, refuses a plain member that, and forgets a token once it is revoked. Fails (never
//! skips) without the virtualenv: `make pyenv` makes it.

#[path = "common/keystone.rs"]
mod keystone;

use keystone::{password, Keystone, KeystoneOptions};
use std::time::Instant;

#[tokio::test]
async fn keystone_tokens_validate_and_revoke() -> anyhow::Result<()> {
    let started = Instant::now();
    let keystone = Keystone::start(KeystoneOptions {
        network_url: Some("http://127.0.0.1:9696".to_string()),
        compute_url: Some("http://127.0.0.1:8774/v2.1".to_string()),
        ..KeystoneOptions::default()
    })?;
    assert!(
        keystone.url.starts_with("http://127.0.0.1:") && keystone.url.ends_with("/v3"),
        "{}",
        keystone.url
    );
    for project in ["service", "alpha", "beta", "admin"] {
        assert_eq!(keystone.project_id(project).len(), 32, "project {project}: {}", keystone.seeded);
    }

    // Project-scoped tokens carry the seeded role and project.
    let (member, body) = keystone.token_with_body("alpha-member", &password("alpha-member"), "alpha").await?;
    let roles: Vec<&str> =
        body["token"]["roles"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(roles.contains(&"member"), "alpha-member's roles: {roles:?}");
    assert!(!roles.contains(&"admin"), "alpha-member's roles: {roles:?}");
    assert_eq!(body["token"]["project"]["id"], keystone.project_id("alpha"));
    let reader = keystone.token("beta-reader", &password("beta-reader"), "beta").await?;
    assert!(
        keystone.token("beta-reader", &password("beta-reader"), "alpha").await.is_err(),
        "beta-reader got a token on alpha"
    );

    // The service user validates them and finds the registered endpoints in its catalog.
    let (service, body) = keystone.token_with_body("tern", &password("tern"), "service").await?;
    let types: Vec<&str> =
        body["token"]["catalog"].as_array().unwrap().iter().filter_map(|s| s["type"].as_str()).collect();
    for wanted in ["identity", "network", "compute"] {
        assert!(types.contains(&wanted), "catalog types {types:?} lack {wanted}");
    }
    let valid = keystone.validate(&service, &member).await?.expect("alpha-member's token is valid");
    assert_eq!(valid["token"]["user"]["id"], keystone.user_id("alpha-member"));
    assert_eq!(valid["token"]["project"]["id"], keystone.project_id("alpha"));
    let valid = keystone.validate(&service, &reader).await?.expect("beta-reader's token is valid");
    assert_eq!(valid["token"]["project"]["id"], keystone.project_id("beta"));

    // A plain member may not validate someone else's token.
    let refused = keystone.validate(&member, &reader).await;
    assert!(
        format!("{refused:?}").contains("403"),
        "alpha-member validating beta-reader's token: {refused:?}"
    );

    // Revoked by an admin, the token is gone (404); the other one is untouched.
    let admin = keystone.admin_token().await?;
    keystone.revoke(&admin, &member).await?;
    assert!(keystone.validate(&service, &member).await?.is_none(), "a revoked token still validates");
    assert!(keystone.validate(&service, &reader).await?.is_some(), "revoking one token revoked another");

    // The system-scoped admin token works too.
    let system = keystone.system_token("admin", &keystone.admin_password).await?;
    assert!(keystone.validate(&system, &reader).await?.is_some());

    eprintln!("keystone harness test: {:.1?}", started.elapsed());
    Ok(())
}
