//! The flow log: one JSON line per port whose place changed in a chassis' flows, appended to a
//! file as the controller installs them — `{"t_us", "chassis", "port", "location",
//! "forwarding_to", "nb_revision", "changes"}` (`t_us`: µs since the Unix epoch). The lab reads it
//! back into each migration's per-chassis timeline. Several controllers may share one file: each
//! line is written with one `write` on a file opened for appending.

use std::io::Write as _;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::core::Reconciled;

/// Starts the writer for `chassis`; send it the controller's reports.
pub fn spawn(path: PathBuf, chassis: String) -> mpsc::UnboundedSender<Reconciled> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Reconciled>();
    tokio::spawn(async move {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no flow log");
                return;
            }
        };
        while let Some(r) = rx.recv().await {
            let t_us = crate::migration::now_ns() / 1000;
            for place in &r.moved {
                let line = serde_json::json!({
                    "t_us": t_us,
                    "chassis": chassis,
                    "port": place.port,
                    "location": place.location,
                    "forwarding_to": place.forwarding_to,
                    "nb_revision": r.nb_revision,
                    "changes": r.changes,
                });
                if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
                    tracing::warn!(path = %path.display(), error = %e, "flow log write failed; stopping it");
                    return;
                }
            }
        }
    });
    tx
}
