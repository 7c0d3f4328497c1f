//! Shutdown signals of the long-running commands: SIGINT (ctrl-c) or SIGTERM (systemd's stop,
//! `kill PID`). Either one stops `server`, `controller` and `allinone` cleanly.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves at the first SIGINT or SIGTERM and logs which one arrived.
pub async fn terminated() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); only ctrl-c stops this process cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    let which = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!("{which}: shutting down");
}
