//! The pure core of the Nova notifier: what Nova must be told about one port, given what it was
//! told before ([`changes`]). No IO, no clock; Neutron's rules (`neutron/notifiers/nova.py`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tern_model::{FloatingIp, Migration, MigrationState, Port, Status};

/// Neutron's `DEVICE_OWNER_COMPUTE_PREFIX`: ports Nova made for a server.
pub const COMPUTE_OWNER_PREFIX: &str = "compute:";

/// Nova's `tag` is at most this long (os-server-external-events schema).
const MAX_TAG_LEN: usize = 255;

/// The events of os-server-external-events that tern sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventName {
    #[serde(rename = "network-vif-plugged")]
    VifPlugged,
    #[serde(rename = "network-vif-unplugged")]
    VifUnplugged,
    #[serde(rename = "network-changed")]
    Changed,
    #[serde(rename = "network-vif-deleted")]
    VifDeleted,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::VifPlugged => "network-vif-plugged",
            EventName::VifUnplugged => "network-vif-unplugged",
            EventName::Changed => "network-changed",
            EventName::VifDeleted => "network-vif-deleted",
        }
    }
}

/// An event's status: `failed` for a port that went to ERROR instead of ACTIVE (Neutron's
/// `NEUTRON_NOVA_EVENT_STATUS_MAP`), `completed` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Completed,
    Failed,
}

/// One element of the request's `events` list, exactly as Nova takes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub name: EventName,
    /// The server (the port's `device_id`).
    pub server_uuid: String,
    /// The port id.
    pub tag: String,
    pub status: EventStatus,
}

impl Event {
    fn new(name: EventName, server: &str, port_id: &str, status: EventStatus) -> Event {
        Event { name, server_uuid: server.to_owned(), tag: port_id.to_owned(), status }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} for server {}", self.name.as_str(), self.tag, self.server_uuid)
    }
}

/// A floating IP as a port's facts hold it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FloatingFact {
    pub id: String,
    pub address: Option<IpAddr>,
    pub fixed_ip_address: Option<IpAddr>,
}

impl FloatingFact {
    pub fn of(f: &FloatingIp) -> FloatingFact {
        FloatingFact {
            id: f.id.clone(),
            address: f.floating_ip_address,
            fixed_ip_address: f.fixed_ip_address,
        }
    }
}

/// What Nova knows (or is to know) of one compute port: the facts events are computed from.
/// Stored as JSON in the port's notified record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// The server.
    pub device_id: String,
    pub status: Status,
    /// Sorted.
    #[serde(default)]
    pub fixed_ips: Vec<IpAddr>,
    /// The floating IPs associated with the port, sorted.
    #[serde(default)]
    pub floating_ips: Vec<FloatingFact>,
    /// The highest epoch of the port's live migrations whose destination VIF was seen plugged
    /// (0: none): each migration's plug is told once.
    #[serde(default)]
    pub migration_epoch: u64,
}

/// A port as the NB shows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The port is gone.
    Deleted,
    /// The port exists but is no server's (no `compute:` owner, or no server UUID).
    NotCompute,
    Compute(Facts),
}

/// Neutron's `_is_compute_port`: a `compute:*` owner and a device id that looks like a UUID.
pub fn is_compute_port(port: &Port) -> bool {
    port.device_owner.starts_with(COMPUTE_OWNER_PREFIX) && is_uuid_like(&port.device_id)
}

/// oslo's `is_uuid_like`: 32 hex digits once dashes, braces and a `urn:uuid:` prefix are gone.
pub fn is_uuid_like(s: &str) -> bool {
    let s = s.strip_prefix("urn:").unwrap_or(s);
    let s = s.strip_prefix("uuid:").unwrap_or(s);
    let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
    let hex: Vec<char> = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.iter().all(char::is_ascii_hexdigit)
}

/// The epoch of `m` if its destination VIF is plugged and the migration still runs (a plug
/// told after the migration ended would be news to nobody).
pub fn plugged_epoch(m: &Migration) -> u64 {
    match m.state {
        MigrationState::DestPlugged | MigrationState::Activated => m.epoch,
        MigrationState::Announced | MigrationState::Completed | MigrationState::Aborted => 0,
    }
}

/// The port as the notifier sees it: its own fields, the floating IPs associated with it and
/// the epoch of its plugged migration (0: none).
pub fn observe(port: &Port, mut floating_ips: Vec<FloatingFact>, migration_epoch: u64) -> Observed {
    if !is_compute_port(port) || port.id.chars().count() > MAX_TAG_LEN {
        return Observed::NotCompute;
    }
    let mut fixed_ips: Vec<IpAddr> = port.fixed_ips.iter().filter_map(|f| f.ip_address).collect();
    fixed_ips.sort();
    fixed_ips.dedup();
    floating_ips.sort();
    Observed::Compute(Facts {
        device_id: port.device_id.clone(),
        status: port.status,
        fixed_ips,
        floating_ips,
        migration_epoch,
    })
}

/// Neutron's `record_port_status_changed`: `network-vif-unplugged` when a port goes from ACTIVE
/// to DOWN, `network-vif-plugged` when it goes from DOWN or BUILD (or nothing: a port seen for
/// the first time) to ACTIVE (`completed`) or ERROR (`failed`); every other change is no news.
fn status_event(before: Option<Status>, after: Status) -> Option<(EventName, EventStatus)> {
    match (before, after) {
        (Some(Status::Active), Status::Down) => Some((EventName::VifUnplugged, EventStatus::Completed)),
        (None | Some(Status::Down | Status::Build), Status::Active) => {
            Some((EventName::VifPlugged, EventStatus::Completed))
        }
        (None | Some(Status::Down | Status::Build), Status::Error) => {
            Some((EventName::VifPlugged, EventStatus::Failed))
        }
        _ => None,
    }
}

/// What Nova must be told about port `port_id`, which it was last told `told` about (`None`:
/// nothing), now that the NB shows `now`; and what Nova knows once told (`None`: nothing to
/// remember, the port is gone or no server's).
///
/// * A port seen for the first time: `network-vif-plugged` if it is ACTIVE or ERROR, or its
///   migration's destination is plugged (Neutron tells nothing of a port being created).
/// * Status: see [`status_event`].
/// * Fixed IPs or floating IPs changed, or the port moved to another server: `network-changed`
///   (to the server it is on now).
/// * A live migration whose destination VIF is plugged, not told yet (a higher epoch):
///   `network-vif-plugged` `completed`, so Nova starts the migration (Neutron's
///   `notify_port_active_direct`); one per migration, and not twice in one answer.
/// * The port deleted: `network-vif-deleted` to the server it was on.
/// * The port no longer a server's (detached): nothing (Neutron checks the port as it is after
///   the change).
pub fn changes(port_id: &str, told: Option<&Facts>, now: &Observed) -> (Vec<Event>, Option<Facts>) {
    let mut out = Vec::new();
    let now = match now {
        Observed::Deleted => {
            if let Some(t) = told {
                out.push(Event::new(EventName::VifDeleted, &t.device_id, port_id, EventStatus::Completed));
            }
            return (out, None);
        }
        Observed::NotCompute => return (out, None),
        Observed::Compute(f) => f,
    };
    let server = now.device_id.as_str();
    let told_epoch = told.map_or(0, |t| t.migration_epoch);
    if let Some(t) = told {
        let moved = t.device_id != now.device_id;
        if moved || t.fixed_ips != now.fixed_ips || t.floating_ips != now.floating_ips {
            out.push(Event::new(EventName::Changed, server, port_id, EventStatus::Completed));
        }
    }
    if let Some((name, status)) = status_event(told.map(|t| t.status), now.status) {
        out.push(Event::new(name, server, port_id, status));
    }
    let plugged_told = out.iter().any(|e| e.name == EventName::VifPlugged);
    if now.migration_epoch > told_epoch && !plugged_told {
        out.push(Event::new(EventName::VifPlugged, server, port_id, EventStatus::Completed));
    }
    let mut known = now.clone();
    known.migration_epoch = now.migration_epoch.max(told_epoch);
    (out, Some(known))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_model::FixedIp;

    const VM: &str = "3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b";
    const VM2: &str = "0a0b0c0d-1111-4222-8333-444455556666";

    fn port(status: Status) -> Port {
        let mut p = Port::new("net");
        p.id = "p1".into();
        p.device_owner = "compute:nova".into();
        p.device_id = VM.into();
        p.status = status;
        p.fixed_ips = vec![FixedIp { subnet_id: "s".into(), ip_address: Some("10.0.0.5".parse().unwrap()) }];
        p
    }

    fn facts(status: Status) -> Facts {
        match observe(&port(status), Vec::new(), 0) {
            Observed::Compute(f) => f,
            other => panic!("{other:?}"),
        }
    }

    fn names(events: &[Event]) -> Vec<(&'static str, EventStatus)> {
        events.iter().map(|e| (e.name.as_str(), e.status)).collect()
    }

    use EventStatus::{Completed, Failed};

    #[test]
    fn compute_ports_only() {
        assert!(matches!(observe(&port(Status::Active), vec![], 0), Observed::Compute(_)));
        let mut p = port(Status::Active);
        p.device_owner = "network:dhcp".into();
        assert_eq!(observe(&p, vec![], 0), Observed::NotCompute);
        let mut p = port(Status::Active);
        p.device_id = "vm-a".into();
        assert_eq!(observe(&p, vec![], 0), Observed::NotCompute, "Nova's server_uuid is a UUID");
        for ok in [VM, "3F1B2A4C5D6E4F708A9B0C1D2E3F4A5B", "{3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b}"] {
            assert!(is_uuid_like(ok), "{ok}");
        }
        for bad in ["", "vm", "3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5", "3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5g"] {
            assert!(!is_uuid_like(bad), "{bad}");
        }
    }

    #[test]
    fn first_sight() {
        // A new DOWN port: nothing to tell, but Nova now knows it (a baseline for later changes).
        let (ev, known) = changes("p1", None, &Observed::Compute(facts(Status::Down)));
        assert!(ev.is_empty());
        assert_eq!(known, Some(facts(Status::Down)));
        // Seen ACTIVE (or ERROR) at once: it was plugged (from NO_VALUE in Neutron's terms).
        let (ev, _) = changes("p1", None, &Observed::Compute(facts(Status::Active)));
        assert_eq!(names(&ev), [("network-vif-plugged", Completed)]);
        assert_eq!((ev[0].server_uuid.as_str(), ev[0].tag.as_str()), (VM, "p1"));
        let (ev, _) = changes("p1", None, &Observed::Compute(facts(Status::Error)));
        assert_eq!(names(&ev), [("network-vif-plugged", Failed)]);
        // Deleted or detached before anything was told: nothing.
        assert_eq!(changes("p1", None, &Observed::Deleted), (vec![], None));
        assert_eq!(changes("p1", None, &Observed::NotCompute), (vec![], None));
    }

    #[test]
    fn status_transitions_follow_neutron() {
        use Status::*;
        let cases = [
            (Down, Active, Some(("network-vif-plugged", Completed))),
            (Build, Active, Some(("network-vif-plugged", Completed))),
            (Down, Error, Some(("network-vif-plugged", Failed))),
            (Build, Error, Some(("network-vif-plugged", Failed))),
            (Active, Down, Some(("network-vif-unplugged", Completed))),
            (Active, Active, None),
            (Active, Error, None),
            (Active, Build, None),
            (Error, Active, None),
            (Error, Down, None),
            (Down, Build, None),
            (Down, Down, None),
        ];
        for (before, after, want) in cases {
            let (ev, known) = changes("p1", Some(&facts(before)), &Observed::Compute(facts(after)));
            assert_eq!(names(&ev), want.into_iter().collect::<Vec<_>>(), "{before:?} -> {after:?}");
            assert_eq!(known, Some(facts(after)));
        }
    }

    #[test]
    fn fixed_and_floating_ip_changes() {
        let told = facts(Status::Active);
        let mut now = told.clone();
        now.fixed_ips.push("10.0.0.9".parse().unwrap());
        let (ev, _) = changes("p1", Some(&told), &Observed::Compute(now.clone()));
        assert_eq!(names(&ev), [("network-changed", Completed)]);
        let fip = FloatingFact {
            id: "f1".into(),
            address: Some("172.24.4.10".parse().unwrap()),
            fixed_ip_address: Some("10.0.0.5".parse().unwrap()),
        };
        let mut now = told.clone();
        now.floating_ips.push(fip.clone());
        let (ev, known) = changes("p1", Some(&told), &Observed::Compute(now.clone()));
        assert_eq!(names(&ev), [("network-changed", Completed)]);
        // Disassociated again: changed again; associated to the other fixed IP: changed.
        let (ev, _) = changes("p1", known.as_ref(), &Observed::Compute(told.clone()));
        assert_eq!(names(&ev), [("network-changed", Completed)]);
        let mut moved = now.clone();
        moved.floating_ips[0].fixed_ip_address = Some("10.0.0.6".parse().unwrap());
        assert_eq!(
            names(&changes("p1", Some(&now), &Observed::Compute(moved)).0),
            [("network-changed", Completed)]
        );
        // A change Nova does not see (the facts are equal): nothing.
        assert_eq!(changes("p1", Some(&told), &Observed::Compute(told.clone())).0, vec![]);
    }

    #[test]
    fn changed_and_status_in_one_step() {
        let told = facts(Status::Down);
        let mut now = facts(Status::Active);
        now.fixed_ips.clear();
        let (ev, _) = changes("p1", Some(&told), &Observed::Compute(now));
        assert_eq!(names(&ev), [("network-changed", Completed), ("network-vif-plugged", Completed)]);
    }

    #[test]
    fn deleted_and_detached() {
        let told = facts(Status::Active);
        let (ev, known) = changes("p1", Some(&told), &Observed::Deleted);
        assert_eq!(names(&ev), [("network-vif-deleted", Completed)]);
        assert_eq!(ev[0].server_uuid, VM);
        assert_eq!(known, None);
        // Detached (device_id cleared): Neutron looks at the port after the update, no server.
        assert_eq!(changes("p1", Some(&told), &Observed::NotCompute), (vec![], None));
    }

    #[test]
    fn moved_to_another_server() {
        let told = facts(Status::Active);
        let mut now = told.clone();
        now.device_id = VM2.into();
        let (ev, known) = changes("p1", Some(&told), &Observed::Compute(now));
        assert_eq!(names(&ev), [("network-changed", Completed)]);
        assert_eq!(ev[0].server_uuid, VM2);
        assert_eq!(known.unwrap().device_id, VM2);
    }

    #[test]
    fn migration_destination_plugged_is_told_once_per_migration() {
        let mut m = Migration::new("p1", 7, "hv1", "hv2");
        m.state = MigrationState::Announced;
        assert_eq!(plugged_epoch(&m), 0, "announced: the destination is known, not plugged");
        m.state = MigrationState::DestPlugged;
        assert_eq!(plugged_epoch(&m), 7);
        m.state = MigrationState::Aborted;
        assert_eq!(plugged_epoch(&m), 0);

        let told = facts(Status::Active);
        let mut now = told.clone();
        now.migration_epoch = 7;
        let (ev, known) = changes("p1", Some(&told), &Observed::Compute(now.clone()));
        assert_eq!(names(&ev), [("network-vif-plugged", Completed)]);
        let known = known.unwrap();
        assert_eq!(known.migration_epoch, 7);
        // Seen again (activated, same epoch) or after the record went (epoch 0): nothing.
        assert!(changes("p1", Some(&known), &Observed::Compute(now.clone())).0.is_empty());
        let (ev, after) = changes("p1", Some(&known), &Observed::Compute(told.clone()));
        assert!(ev.is_empty());
        assert_eq!(after.unwrap().migration_epoch, 7, "the told epoch is kept");
        // The next migration of the port: told again.
        let mut next = told.clone();
        next.migration_epoch = 9;
        assert_eq!(
            names(&changes("p1", Some(&known), &Observed::Compute(next)).0),
            [("network-vif-plugged", Completed)]
        );
        // Plugged and ACTIVE in the same step: one vif-plugged, not two.
        let mut both = facts(Status::Active);
        both.migration_epoch = 9;
        let (ev, _) = changes("p1", Some(&facts(Status::Down)), &Observed::Compute(both.clone()));
        assert_eq!(names(&ev), [("network-vif-plugged", Completed)]);
        let (ev, _) = changes("p1", None, &Observed::Compute(both));
        assert_eq!(names(&ev), [("network-vif-plugged", Completed)]);
    }

    #[test]
    fn event_json_is_novas() {
        let e = Event::new(EventName::VifPlugged, VM, "p1", EventStatus::Failed);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"name": "network-vif-plugged", "server_uuid": VM, "tag": "p1", "status": "failed"})
        );
    }

    #[test]
    fn facts_round_trip() {
        let mut f = facts(Status::Error);
        f.floating_ips.push(FloatingFact { id: "f".into(), address: None, fixed_ip_address: None });
        f.migration_epoch = 3;
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Facts>(&text).unwrap(), f);
    }
}
