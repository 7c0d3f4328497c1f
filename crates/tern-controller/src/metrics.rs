//! The controller's metrics, in the process' Prometheus registry (`prometheus::gather()`; the
//! `tern` binary serves them at `/metrics` on `--metrics-listen`). Every series has a `chassis`
//! label, so several controllers in one process (the lab, `allinone`) stay apart.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec, IntCounterVec,
    IntGaugeVec,
};

/// Latency buckets from 100 µs to 30 s.
const SECONDS: &[f64] = &[0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0];
/// Size buckets from 1 to 100,000.
const SIZES: &[f64] = &[1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0];

struct Families {
    reconcile: HistogramVec,
    batch: HistogramVec,
    flows: IntGaugeVec,
    bundle_size: HistogramVec,
    bundle_seconds: HistogramVec,
    revision: IntGaugeVec,
    lag: IntGaugeVec,
    migrations: IntGaugeVec,
    packet_ins: IntCounterVec,
    events: IntCounterVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    // Registered once per process; a name can only be registered once, so these cannot fail.
    let h = |name, help, labels: &[&str], buckets: &[f64]| {
        register_histogram_vec!(name, help, labels, buckets.to_vec()).expect("metric registered once")
    };
    let g = |name, help, labels: &[&str]| {
        register_int_gauge_vec!(name, help, labels).expect("metric registered once")
    };
    Families {
        reconcile: h(
            "tern_controller_reconcile_seconds",
            "From the start of a flow computation to the switch holding its result (bundle acknowledged, or nothing to change).",
            &["chassis"],
            SECONDS,
        ),
        batch: h(
            "tern_controller_batch_events",
            "NB events applied before one flow computation.",
            &["chassis"],
            SIZES,
        ),
        flows: g("tern_controller_flows", "Flows the switch holds (as installed by this controller).", &["chassis"]),
        bundle_size: h("tern_controller_bundle_flow_mods", "Flow changes per bundle sent.", &["chassis"], SIZES),
        bundle_seconds: h(
            "tern_controller_bundle_seconds",
            "From sending a bundle to the switch's acknowledgement of its commit.",
            &["chassis"],
            SECONDS,
        ),
        revision: g(
            "tern_controller_nb_revision",
            "NB revisions: `received` is the newest applied to the controller's copy, `installed` the one the switch's flows reflect.",
            &["chassis", "at"],
        ),
        lag: g(
            "tern_controller_nb_revision_lag",
            "NB revisions received but not yet reflected in the switch's flows.",
            &["chassis"],
        ),
        migrations: g(
            "tern_controller_migrations",
            "Live-migration records in the NB as this controller sees them, by state.",
            &["chassis", "state"],
        ),
        packet_ins: register_int_counter_vec!(
            "tern_controller_packet_ins_total",
            "Packets the switch sent to the controller, by kind (dhcp, gateway_arp, activation, other).",
            &["chassis", "kind"]
        )
        .expect("metric registered once"),
        events: register_int_counter_vec!(
            "tern_controller_nb_events_total",
            "NB events applied to the controller's copy, by whether they could change this chassis' flows (`scope`: in, a computation followed; out, none needed).",
            &["chassis", "scope"]
        )
        .expect("metric registered once"),
    }
});

/// The metrics of one controller (one chassis).
#[derive(Clone, Debug)]
pub struct Metrics {
    chassis: String,
}

use tern_pipeline::apps::packet_in::PacketIn;

impl Metrics {
    pub fn new(chassis: &str) -> Metrics {
        let m = Metrics { chassis: chassis.to_string() };
        // Every series exists from the start (a scrape sees zeros, not absence).
        for scope in ["in", "out"] {
            FAMILIES.events.with_label_values(&[chassis, scope]);
        }
        for kind in PacketIn::KINDS {
            FAMILIES.packet_ins.with_label_values(&[chassis, kind]);
        }
        for state in tern_model::MigrationState::ALL {
            FAMILIES.migrations.with_label_values(&[chassis, state.as_str()]).set(0);
        }
        m
    }

    pub fn reconciled(&self, took: Duration) {
        FAMILIES.reconcile.with_label_values(&[&self.chassis]).observe(took.as_secs_f64());
    }

    /// A batch of `events` NB events, `in_scope` of which could change the flows.
    pub fn batch(&self, events: usize, in_scope: usize) {
        FAMILIES.batch.with_label_values(&[&self.chassis]).observe(events as f64);
        let out_of_scope = events.saturating_sub(in_scope);
        FAMILIES.events.with_label_values(&[&self.chassis, "in"]).inc_by(in_scope as u64);
        FAMILIES.events.with_label_values(&[&self.chassis, "out"]).inc_by(out_of_scope as u64);
    }

    pub fn bundle(&self, flow_mods: usize, took: Duration) {
        FAMILIES.bundle_size.with_label_values(&[&self.chassis]).observe(flow_mods as f64);
        FAMILIES.bundle_seconds.with_label_values(&[&self.chassis]).observe(took.as_secs_f64());
    }

    /// The switch holds `flows` flows reflecting NB revision `installed`; the controller has
    /// received up to `received`.
    pub fn installed(&self, flows: usize, installed: u64, received: u64) {
        FAMILIES.flows.with_label_values(&[&self.chassis]).set(flows as i64);
        self.revision("installed", installed);
        self.revision("received", received);
    }

    pub fn received(&self, received: u64) {
        self.revision("received", received);
    }

    /// Sets NB revision `at` (`received` or `installed`) and the lag between the two.
    fn revision(&self, at: &str, revision: u64) {
        FAMILIES.revision.with_label_values(&[&self.chassis, at]).set(revision as i64);
        let get = |at: &str| FAMILIES.revision.with_label_values(&[self.chassis.as_str(), at]).get();
        FAMILIES.lag.with_label_values(&[&self.chassis]).set((get("received") - get("installed")).max(0));
    }

    /// The migration records as seen now.
    pub fn migrations<'a>(&self, records: impl IntoIterator<Item = &'a tern_model::Migration>) {
        let mut counts = std::collections::BTreeMap::new();
        for r in records {
            *counts.entry(r.state.as_str()).or_insert(0i64) += 1;
        }
        for state in tern_model::MigrationState::ALL {
            let n = counts.get(state.as_str()).copied().unwrap_or(0);
            FAMILIES.migrations.with_label_values(&[&self.chassis, state.as_str()]).set(n);
        }
    }

    /// A packet-in of `kind` (one of [`PacketIn::KINDS`]).
    pub fn packet_in(&self, kind: &str) {
        FAMILIES.packet_ins.with_label_values(&[&self.chassis, kind]).inc();
    }
}

/// Every metric of the process, in Prometheus' text format.
pub fn render() -> String {
    let mut out = String::new();
    let encoder = prometheus::TextEncoder::new();
    // Encoding into a String only fails on a metric family without metrics, which gather skips.
    let _ = encoder.encode_utf8(&prometheus::gather(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controllers_series_are_labelled_with_its_chassis_and_exist_from_the_start() {
        let m = Metrics::new("metrics-test-hv");
        m.batch(3, 1);
        m.bundle(12, Duration::from_millis(2));
        m.installed(40, 7, 9);
        m.packet_in("dhcp");
        let text = render();
        for line in [
            "tern_controller_flows{chassis=\"metrics-test-hv\"} 40",
            "tern_controller_nb_revision_lag{chassis=\"metrics-test-hv\"} 2",
            "tern_controller_packet_ins_total{chassis=\"metrics-test-hv\",kind=\"dhcp\"} 1",
            "tern_controller_packet_ins_total{chassis=\"metrics-test-hv\",kind=\"activation\"} 0",
            "tern_controller_bundle_flow_mods_count{chassis=\"metrics-test-hv\"} 1",
            "tern_controller_migrations{chassis=\"metrics-test-hv\",state=\"dest_plugged\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
