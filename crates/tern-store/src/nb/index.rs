//! Secondary indexes of ports, so that a query by network or by device, or a page of ports,
//! reads about as many keys as it returns instead of every port.
//!
//! Each port has one entry per indexed field, `/tern/index/by/port/<field>/<value>/<port id>`
//! (empty value; the value escaped into one key segment, see [`escape_segment`]), put and deleted
//! in the same store transaction as the port itself (`prepare_put` / `prepare_delete`), so the
//! entries always match the ports. Entries sort by port id under their value's prefix: the ports
//! of a value come in id order, Neutron's default order, and pages of them are key ranges.
//!
//! A store written before these entries existed has none: [`Nb::ensure_port_index`] (run by
//! `tern server` at start) builds them and then writes the marker key [`PORT_INDEX_MARKER`]
//! holding [`PORT_INDEX_VERSION`]. Readers use the index only once the marker says it is built
//! ([`Nb::port_index_ready`]). `tern db check` reports entries that disagree with the ports.
//!
//! Like every key under `/tern/index/`, the entries are outside `/tern/v1/`: NB watches (and so
//! the controllers) never see them.

use super::{decode, Nb, NbError, NbResult, Stored};
use crate::{StoreError, Txn, TxnOp, MAX_TXN_OPS};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use tern_model::{Kind, Object, Port};

/// Where the port index entries live: `<prefix><field>/<escaped value>/<port id>`.
pub const PORT_INDEX_PREFIX: &str = "/tern/index/by/port/";
/// Holds [`PORT_INDEX_VERSION`] once every port has its entries (outside `/tern/index/`: it is
/// about the index, not an entry of it).
pub const PORT_INDEX_MARKER: &str = "/tern/meta/index/port";
/// The layout of the entries; a marker holding another version means "build again".
pub const PORT_INDEX_VERSION: &str = "1";

/// A field of a port that is indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortField {
    NetworkId,
    DeviceId,
}

impl PortField {
    pub const ALL: [PortField; 2] = [PortField::NetworkId, PortField::DeviceId];

    /// The field's Neutron name, as in queries and in the entries' keys.
    pub fn name(self) -> &'static str {
        match self {
            PortField::NetworkId => "network_id",
            PortField::DeviceId => "device_id",
        }
    }

    pub fn from_name(name: &str) -> Option<PortField> {
        PortField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The port's value of the field.
    pub fn of(self, port: &Port) -> &str {
        match self {
            PortField::NetworkId => &port.network_id,
            PortField::DeviceId => &port.device_id,
        }
    }
}

/// A value as one key segment: ASCII letters, digits and `-_.:~@` as they are, every other byte as
/// `%XX`, and the empty string as `%` alone (which no escaped value is). Injective, and never
/// contains `/`.
pub fn escape_segment(value: &str) -> String {
    if value.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.:~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value [`escape_segment`] made `segment` from (`None` if it made no such segment).
pub fn unescape_segment(segment: &str) -> Option<String> {
    if segment == "%" {
        return Some(String::new());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let value = String::from_utf8(out).ok()?;
    (escape_segment(&value) == segment).then_some(value)
}

/// The prefix of the entries of the ports whose `field` is `value`.
pub fn port_index_prefix(field: PortField, value: &str) -> String {
    format!("{PORT_INDEX_PREFIX}{}/{}/", field.name(), escape_segment(value))
}

/// The entries `port` must have, one per indexed field.
pub fn port_index_keys(port: &Port) -> Vec<String> {
    PortField::ALL.iter().map(|f| format!("{}{}", port_index_prefix(*f, f.of(port)), port.id)).collect()
}

/// The entries an object must have (none but a port's).
pub(super) fn index_keys(object: &Object) -> Vec<String> {
    match object {
        Object::Port(p) => port_index_keys(p),
        _ => Vec::new(),
    }
}

/// An entry key's field, value and port id; `None` for a key that is not a well-formed entry.
pub fn parse_port_index_key(key: &str) -> Option<(PortField, String, String)> {
    let rest = key.strip_prefix(PORT_INDEX_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let field = PortField::from_name(parts.next()?)?;
    let value = unescape_segment(parts.next()?)?;
    let id = parts.next().filter(|id| !id.is_empty() && !id.contains('/'))?;
    Some((field, value, id.to_owned()))
}

/// Whether `key` is under the port index (well formed or not).
pub fn is_port_index_key(key: &str) -> bool {
    key.starts_with(PORT_INDEX_PREFIX)
}

/// Where a listing of ports reads from: every port, or the index entries of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSource<'a> {
    All,
    By(PortField, &'a str),
}

/// A page of ports ([`Nb::port_page`]).
#[derive(Clone, Debug, Default)]
pub struct PortPage {
    /// The ids read (objects or index entries), in id order: where the next page starts, and
    /// whether this one was the last (fewer ids than asked for).
    pub ids: Vec<String>,
    /// The ports of those ids that still exist, in id order.
    pub ports: Vec<Stored>,
}

/// What [`Nb::ensure_port_index`] or [`Nb::rebuild_port_index`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexBuild {
    /// Whether the index was (re)built (false: the marker said it was already).
    pub built: bool,
    pub ports: usize,
    pub written: usize,
    pub deleted: usize,
}

impl Nb {
    /// Whether the port index is built (its marker holds [`PORT_INDEX_VERSION`]). Until it is,
    /// readers must scan the ports instead. Once it is, this `Nb` (and its clones) no longer
    /// reads the marker.
    pub async fn port_index_ready(&self) -> NbResult<bool> {
        if self.port_index_ready.load(Ordering::Acquire) {
            return Ok(true);
        }
        let ready = self
            .store
            .get(PORT_INDEX_MARKER)
            .await?
            .is_some_and(|kv| kv.value == PORT_INDEX_VERSION.as_bytes());
        if ready {
            self.port_index_ready.store(true, Ordering::Release);
        }
        Ok(ready)
    }

    /// Builds the port index if its marker does not say it is built (a store from before the
    /// index, or from another layout), then writes the marker. Safe beside concurrent writers
    /// (see [`Nb::rebuild_port_index`]).
    pub async fn ensure_port_index(&self) -> NbResult<IndexBuild> {
        if self.port_index_ready().await? {
            return Ok(IndexBuild::default());
        }
        let build = self.rebuild_port_index().await?;
        self.store.put(PORT_INDEX_MARKER, PORT_INDEX_VERSION.as_bytes().to_vec(), None).await?;
        self.port_index_ready.store(true, Ordering::Release);
        Ok(build)
    }

    /// Gives every port the entries it lacks and deletes every entry no port wants. Each change
    /// is guarded by its port's key as it was read (absent, for entries of a gone port), so a
    /// port written meanwhile (whose write maintains its own entries) is read again and done
    /// again rather than undone.
    pub async fn rebuild_port_index(&self) -> NbResult<IndexBuild> {
        let mut build = IndexBuild { built: true, ..IndexBuild::default() };
        for _ in 0..8 {
            let (ports, entries) = (
                self.store.list(&tern_model::kind_prefix(Kind::Port)).await?,
                self.store.list(PORT_INDEX_PREFIX).await?,
            );
            build.ports = ports.items.len();
            // Per port key: the revision it was read at (0: absent) and the changes it needs; a
            // malformed entry is its own item, guarded by nothing (no writer makes one).
            let mut plan: BTreeMap<String, (Option<u64>, Vec<TxnOp>)> = BTreeMap::new();
            let mut wanted: HashMap<String, BTreeSet<String>> = HashMap::new();
            let held: BTreeSet<&str> = entries.items.iter().map(|kv| kv.key.as_str()).collect();
            for kv in &ports.items {
                let Object::Port(port) = decode(&kv.key, &kv.value)? else { continue };
                let keys: BTreeSet<String> = port_index_keys(&port).into_iter().collect();
                let missing: Vec<TxnOp> = keys
                    .iter()
                    .filter(|k| !held.contains(k.as_str()))
                    .map(|k| TxnOp::Put { key: k.clone(), value: Vec::new(), lease: None })
                    .collect();
                if !missing.is_empty() {
                    plan.insert(kv.key.clone(), (Some(kv.mod_revision), missing));
                }
                wanted.insert(port.id.clone(), keys);
            }
            let revisions: HashMap<&str, u64> =
                ports.items.iter().map(|kv| (kv.key.as_str(), kv.mod_revision)).collect();
            for kv in &entries.items {
                let port = parse_port_index_key(&kv.key).map(|(_, _, id)| id);
                if port.as_ref().is_some_and(|id| wanted.get(id).is_some_and(|keys| keys.contains(&kv.key))) {
                    continue;
                }
                let (item, guard) = match port {
                    Some(id) => {
                        let port_key = tern_model::key(Kind::Port, &id);
                        let revision = revisions.get(port_key.as_str()).copied().unwrap_or(0);
                        (port_key, Some(revision))
                    }
                    None => (kv.key.clone(), None),
                };
                plan.entry(item)
                    .or_insert_with(|| (guard, Vec::new()))
                    .1
                    .push(TxnOp::Delete { key: kv.key.clone() });
            }
            if plan.is_empty() {
                return Ok(build);
            }
            // Batches of whole ports, each batch one transaction.
            let mut raced = false;
            let mut txn = Txn::new();
            let mut counts = (0, 0);
            let mut entries = plan.into_iter().peekable();
            while let Some((port_key, (guard, ops))) = entries.next() {
                if let Some(revision) = guard {
                    txn = txn.compare(port_key, revision);
                }
                for op in ops {
                    match op {
                        TxnOp::Put { .. } => counts.0 += 1,
                        TxnOp::Delete { .. } => counts.1 += 1,
                    }
                    txn.ops.push(op);
                }
                let next_fits = entries.peek().is_none_or(|(_, (_, ops))| {
                    txn.ops.len() + ops.len() <= MAX_TXN_OPS && txn.compares.len() < MAX_TXN_OPS
                });
                if !next_fits || entries.peek().is_none() {
                    match self.store.txn(std::mem::take(&mut txn)).await {
                        Ok(_) => {
                            build.written += counts.0;
                            build.deleted += counts.1;
                        }
                        Err(StoreError::Conflict { .. }) => raced = true,
                        Err(e) => return Err(e.into()),
                    }
                    counts = (0, 0);
                }
            }
            if !raced {
                return Ok(build);
            }
        }
        Err(NbError::Exhausted { what: "attempts at rebuilding the port index".into() })
    }

    /// A page of the ports of `source`, in id order: the first `limit` ids after `marker`, or
    /// (`before`) the last `limit` ids before `marker` (no marker: from the first, or up to the
    /// last; `limit` 0: all of them). Reads about `limit` keys (plus one get per port, batched,
    /// from an index), whatever the number of ports. Not a snapshot: a port changed while it is
    /// read is returned as it is now (the caller filters again), a port deleted meanwhile is
    /// left out (its id is still in [`PortPage::ids`]).
    pub async fn port_page(
        &self,
        source: PortSource<'_>,
        marker: Option<&str>,
        limit: usize,
        before: bool,
    ) -> NbResult<PortPage> {
        let prefix = match source {
            PortSource::All => tern_model::kind_prefix(Kind::Port),
            PortSource::By(field, value) => port_index_prefix(field, value),
        };
        let bound = marker.map(|m| format!("{prefix}{m}"));
        let listing = if before {
            self.store.list_before(&prefix, bound.as_deref(), limit).await?
        } else {
            self.store.list_from(&prefix, bound.as_deref(), limit).await?
        };
        let ids: Vec<String> =
            listing.items.iter().filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned)).collect();
        let ports = match source {
            PortSource::All => listing
                .items
                .iter()
                .map(|kv| Ok(Stored { object: decode(&kv.key, &kv.value)?, mod_revision: kv.mod_revision }))
                .collect::<NbResult<Vec<_>>>()?,
            PortSource::By(..) => self.get_many(Kind::Port, &ids).await?,
        };
        Ok(PortPage { ids, ports })
    }

    /// Every port whose `field` is `value`, in id order, from the index (see [`Nb::port_page`]).
    pub async fn ports_by(&self, field: PortField, value: &str) -> NbResult<Vec<Stored>> {
        Ok(self.port_page(PortSource::By(field, value), None, 0, false).await?.ports)
    }

    /// The objects of `kind` with these ids that exist, in the order given (batched reads).
    pub async fn get_many(&self, kind: Kind, ids: &[String]) -> NbResult<Vec<Stored>> {
        let keys: Vec<String> = ids.iter().map(|id| tern_model::key(kind, id)).collect();
        let mut out = Vec::with_capacity(keys.len());
        for kv in self.store.get_many(&keys).await?.into_iter().flatten() {
            out.push(Stored { object: decode(&kv.key, &kv.value)?, mod_revision: kv.mod_revision });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_injectively_and_back() {
        for v in ["", "%", "vm-1", "a/b", "a b", "ünï", "%25", "x:y@z~", "a%2Fb"] {
            let seg = escape_segment(v);
            assert!(!seg.contains('/'), "{seg}");
            assert_eq!(unescape_segment(&seg).as_deref(), Some(v), "{v:?} -> {seg}");
        }
        assert_ne!(escape_segment(""), escape_segment("%"));
        assert_eq!(escape_segment("a/b"), "a%2Fb");
        assert_eq!(unescape_segment("%2f"), None, "only the canonical form");
        assert_eq!(unescape_segment("%G0"), None);
    }

    #[test]
    fn entry_keys_parse_back() {
        let mut p = Port::new("net-1");
        p.id = "p1".into();
        p.device_id = "vm/1".into();
        let keys = port_index_keys(&p);
        assert_eq!(
            keys,
            ["/tern/index/by/port/network_id/net-1/p1", "/tern/index/by/port/device_id/vm%2F1/p1"]
        );
        assert_eq!(parse_port_index_key(&keys[1]), Some((PortField::DeviceId, "vm/1".into(), "p1".into())));
        assert_eq!(parse_port_index_key("/tern/index/by/port/device_id/%/p2").unwrap().1, "");
        assert_eq!(parse_port_index_key("/tern/index/by/port/bogus/x/p1"), None);
        assert_eq!(parse_port_index_key("/tern/index/by/port/device_id/x/"), None);
    }
}
