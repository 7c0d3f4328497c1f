//! A local replica of monitored tables: applies monitor [`TableUpdates`], and describes every
//! step (an update, or replacing the whole replica after a resync) as a list of [`RowChange`]s,
//! so consumers see one consistent diff. Pure data, no IO.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::datum::Row;
use crate::protocol::TableUpdates;

/// One row's change.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    Inserted { table: String, uuid: Uuid, new: Row },
    Modified { table: String, uuid: Uuid, old: Row, new: Row },
    Deleted { table: String, uuid: Uuid, old: Row },
}

impl RowChange {
    /// The table of the changed row.
    pub fn table(&self) -> &str {
        match self {
            RowChange::Inserted { table, .. }
            | RowChange::Modified { table, .. }
            | RowChange::Deleted { table, .. } => table,
        }
    }

    /// The changed row's uuid.
    pub fn uuid(&self) -> Uuid {
        match self {
            RowChange::Inserted { uuid, .. }
            | RowChange::Modified { uuid, .. }
            | RowChange::Deleted { uuid, .. } => *uuid,
        }
    }

    /// The row after the change (`None` for deletes).
    pub fn new_row(&self) -> Option<&Row> {
        match self {
            RowChange::Inserted { new, .. } | RowChange::Modified { new, .. } => Some(new),
            RowChange::Deleted { .. } => None,
        }
    }
}

/// Table name -> row uuid -> row (the monitored columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
}

impl Replica {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// A replica holding a monitor's initial contents.
    pub fn from_initial(initial: &TableUpdates) -> Self {
        let mut r = Self::new();
        r.apply(initial);
        r
    }

    /// Applies one monitor update and returns what changed.
    pub fn apply(&mut self, updates: &TableUpdates) -> Vec<RowChange> {
        let mut changes = Vec::new();
        for (table, rows) in &updates.0 {
            let t = self.tables.entry(table.clone()).or_default();
            for (uuid, upd) in rows {
                match &upd.new {
                    Some(new) => match t.get_mut(uuid) {
                        Some(existing) => {
                            let old = existing.clone();
                            // "new" carries every monitored column; merging also keeps columns a
                            // server might leave out.
                            for (k, v) in new {
                                existing.insert(k.clone(), v.clone());
                            }
                            if *existing != old {
                                changes.push(RowChange::Modified {
                                    table: table.clone(),
                                    uuid: *uuid,
                                    old,
                                    new: existing.clone(),
                                });
                            }
                        }
                        None => {
                            t.insert(*uuid, new.clone());
                            changes.push(RowChange::Inserted {
                                table: table.clone(),
                                uuid: *uuid,
                                new: new.clone(),
                            });
                        }
                    },
                    None => {
                        if let Some(old) = t.remove(uuid) {
                            changes.push(RowChange::Deleted { table: table.clone(), uuid: *uuid, old });
                        }
                    }
                }
            }
        }
        changes
    }

    /// What changed from `old` to `new` (used when a resync replaces the replica).
    pub fn diff(old: &Replica, new: &Replica) -> Vec<RowChange> {
        let empty = BTreeMap::new();
        let mut changes = Vec::new();
        let names: std::collections::BTreeSet<&String> = old.tables.keys().chain(new.tables.keys()).collect();
        for table in names {
            let o = old.tables.get(table).unwrap_or(&empty);
            let n = new.tables.get(table).unwrap_or(&empty);
            for (uuid, orow) in o {
                match n.get(uuid) {
                    None => changes.push(RowChange::Deleted {
                        table: table.clone(),
                        uuid: *uuid,
                        old: orow.clone(),
                    }),
                    Some(nrow) if nrow != orow => changes.push(RowChange::Modified {
                        table: table.clone(),
                        uuid: *uuid,
                        old: orow.clone(),
                        new: nrow.clone(),
                    }),
                    Some(_) => {}
                }
            }
            for (uuid, nrow) in n {
                if !o.contains_key(uuid) {
                    changes.push(RowChange::Inserted {
                        table: table.clone(),
                        uuid: *uuid,
                        new: nrow.clone(),
                    });
                }
            }
        }
        changes
    }

    /// The rows of `table` (empty if the table is not monitored or has no rows).
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> + '_ {
        self.tables.get(table).into_iter().flat_map(|t| t.iter())
    }

    /// One row.
    pub fn get(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }

    /// The row of `table` whose `name` column is `name` (Bridge, Port, Interface).
    pub fn by_name(&self, table: &str, name: &str) -> Option<(Uuid, &Row)> {
        self.rows(table)
            .find(|(_, r)| r.get("name").and_then(Value::as_str) == Some(name))
            .map(|(u, r)| (*u, r))
    }

    /// Number of rows in `table`.
    pub fn len(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, BTreeMap::len)
    }

    /// True when no table holds a row.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::row;
    use crate::protocol::RowUpdate;
    use serde_json::json;

    fn upd(table: &str, uuid: u128, old: Option<Row>, new: Option<Row>) -> TableUpdates {
        let mut t = BTreeMap::new();
        t.insert(Uuid::from_u128(uuid), RowUpdate { old, new });
        TableUpdates([(table.to_string(), t)].into_iter().collect())
    }

    fn r(name: &str, ofport: i64) -> Row {
        row([("name", json!(name)), ("ofport", json!(ofport))])
    }

    #[test]
    fn apply_and_diff_agree() {
        let mut rep = Replica::new();
        let c = rep.apply(&upd("Interface", 1, None, Some(r("a", 1))));
        assert!(matches!(&c[..], [RowChange::Inserted { .. }]));
        let before = rep.clone();
        let c = rep.apply(&upd("Interface", 1, Some(row([("ofport", json!(1))])), Some(r("a", 2))));
        assert!(
            matches!(&c[..], [RowChange::Modified { old, new, .. }] if old["ofport"] == 1 && new["ofport"] == 2)
        );
        assert_eq!(Replica::diff(&before, &rep), c);
        // A no-op modify reports nothing.
        assert!(rep.apply(&upd("Interface", 1, None, Some(r("a", 2)))).is_empty());
        assert_eq!(rep.by_name("Interface", "a").map(|(u, _)| u), Some(Uuid::from_u128(1)));
        let mid = rep.clone();
        let c = rep.apply(&upd("Interface", 1, Some(r("a", 2)), None));
        assert!(matches!(&c[..], [RowChange::Deleted { .. }]));
        assert_eq!(Replica::diff(&mid, &rep), c);
        assert!(rep.is_empty());
        // Deleting an unknown row is not a change.
        assert!(rep.apply(&upd("Interface", 9, None, None)).is_empty());
    }

    #[test]
    fn diff_of_replacement() {
        let mut old = Replica::new();
        old.apply(&upd("Port", 1, None, Some(r("keep", 1))));
        old.apply(&upd("Port", 2, None, Some(r("gone", 1))));
        old.apply(&upd("Port", 3, None, Some(r("changed", 1))));
        let mut new = Replica::new();
        new.apply(&upd("Port", 1, None, Some(r("keep", 1))));
        new.apply(&upd("Port", 3, None, Some(r("changed", 2))));
        new.apply(&upd("Bridge", 4, None, Some(r("br", 0))));
        let d = Replica::diff(&old, &new);
        let summary: Vec<(&str, u128, &str)> = d
            .iter()
            .map(|c| {
                let kind = match c {
                    RowChange::Inserted { .. } => "ins",
                    RowChange::Modified { .. } => "mod",
                    RowChange::Deleted { .. } => "del",
                };
                (c.table(), c.uuid().as_u128(), kind)
            })
            .collect();
        assert_eq!(summary, vec![("Bridge", 4, "ins"), ("Port", 2, "del"), ("Port", 3, "mod")]);
        // Applying the diff's effect: old + diff == new.
        assert_eq!(Replica::diff(&new, &new), vec![]);
    }
}
