//! Sans-IO RFC 7047 JSON-RPC: transaction operations and their results, monitor requests and
//! table updates, and [`Session`], which turns bytes into replies / notifications, numbers
//! requests and answers the server's `echo` by itself. The async shell lives in `client`.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::datum::{self, Row};
use crate::error::OvsdbError;
use crate::framing::JsonFramer;

/// A condition of a `where` clause: `[column, function, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition(Value);

impl Condition {
    /// Any condition; `function` is one of `==`, `!=`, `<`, `<=`, `>`, `>=`, `includes`, `excludes`.
    pub fn new(column: &str, function: &str, value: Value) -> Self {
        Condition(json!([column, function, value]))
    }
    /// `column == value`.
    pub fn eq(column: &str, value: Value) -> Self {
        Self::new(column, "==", value)
    }
    /// `column != value`.
    pub fn ne(column: &str, value: Value) -> Self {
        Self::new(column, "!=", value)
    }
    /// `column includes value`.
    pub fn includes(column: &str, value: Value) -> Self {
        Self::new(column, "includes", value)
    }
    /// `column excludes value`.
    pub fn excludes(column: &str, value: Value) -> Self {
        Self::new(column, "excludes", value)
    }
    /// The row whose `_uuid` is `u`.
    pub fn uuid(u: &Uuid) -> Self {
        Self::eq("_uuid", datum::uuid(u))
    }
    /// The row whose `name` is `name` (Bridge, Port and Interface are indexed by name).
    pub fn name(name: &str) -> Self {
        Self::eq("name", json!(name))
    }
    /// The wire form.
    pub fn to_json(&self) -> Value {
        self.0.clone()
    }
}

/// A mutation of a `mutate` op: `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation(Value);

impl Mutation {
    /// Any mutation; `mutator` is one of `+=`, `-=`, `*=`, `/=`, `%=`, `insert`, `delete`.
    pub fn new(column: &str, mutator: &str, value: Value) -> Self {
        Mutation(json!([column, mutator, value]))
    }
    /// Adds set elements or map pairs (map pairs whose key exists are left alone).
    pub fn insert(column: &str, value: Value) -> Self {
        Self::new(column, "insert", value)
    }
    /// Removes set elements, map pairs, or (given a set of keys) map keys.
    pub fn delete(column: &str, value: Value) -> Self {
        Self::new(column, "delete", value)
    }
    /// The wire form.
    pub fn to_json(&self) -> Value {
        self.0.clone()
    }
}

/// The `until` of a `wait` op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    /// The selected rows equal the given rows.
    Equal,
    /// The selected rows differ from the given rows.
    NotEqual,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    name: &'static str,
    json: Map<String, Value>,
}

fn conditions(conds: Vec<Condition>) -> Value {
    Value::Array(conds.into_iter().map(|c| c.0).collect())
}

impl Op {
    fn new(name: &'static str, fields: Value) -> Self {
        let mut json = Map::new();
        json.insert("op".into(), json!(name));
        if let Value::Object(m) = fields {
            json.extend(m);
        }
        Op { name, json }
    }

    /// `insert` a row. Give it a name with [`Op::with_uuid_name`] to refer to it later in the
    /// same transaction as `["named-uuid", name]`.
    pub fn insert(table: &str, row: Row) -> Self {
        Self::new("insert", json!({"table": table, "row": row}))
    }

    /// Names the row of an `insert` (no effect on other ops).
    pub fn with_uuid_name(mut self, name: &str) -> Self {
        if self.name == "insert" {
            self.json.insert("uuid-name".into(), json!(name));
        }
        self
    }

    /// `update` the columns in `row` of every row matching `conds`.
    pub fn update(table: &str, conds: Vec<Condition>, row: Row) -> Self {
        Self::new("update", json!({"table": table, "where": conditions(conds), "row": row}))
    }

    /// `mutate` every row matching `conds`.
    pub fn mutate(table: &str, conds: Vec<Condition>, mutations: Vec<Mutation>) -> Self {
        let mutations: Vec<Value> = mutations.into_iter().map(|m| m.0).collect();
        Self::new("mutate", json!({"table": table, "where": conditions(conds), "mutations": mutations}))
    }

    /// `delete` every row matching `conds`.
    pub fn delete(table: &str, conds: Vec<Condition>) -> Self {
        Self::new("delete", json!({"table": table, "where": conditions(conds)}))
    }

    /// `select` the rows matching `conds`; `columns: None` selects all columns.
    pub fn select(table: &str, conds: Vec<Condition>, columns: Option<&[&str]>) -> Self {
        let mut op = Self::new("select", json!({"table": table, "where": conditions(conds)}));
        if let Some(cols) = columns {
            op.json.insert("columns".into(), json!(cols));
        }
        op
    }

    /// `wait` until the `columns` of the rows matching `conds` are (or are not) exactly `rows`;
    /// `timeout_ms: Some(0)` fails at once instead of waiting, `None` waits forever.
    pub fn wait(
        table: &str,
        conds: Vec<Condition>,
        columns: &[&str],
        until: WaitUntil,
        rows: Vec<Row>,
        timeout_ms: Option<u64>,
    ) -> Self {
        let until = match until {
            WaitUntil::Equal => "==",
            WaitUntil::NotEqual => "!=",
        };
        let mut op = Self::new(
            "wait",
            json!({"table": table, "where": conditions(conds), "columns": columns, "until": until, "rows": rows}),
        );
        if let Some(t) = timeout_ms {
            op.json.insert("timeout".into(), json!(t));
        }
        op
    }

    /// A `comment` recorded in the database log.
    pub fn comment(text: &str) -> Self {
        Self::new("comment", json!({"comment": text}))
    }

    /// `commit`, optionally durable (fsync before replying).
    pub fn commit(durable: bool) -> Self {
        Self::new("commit", json!({"durable": durable}))
    }

    /// `abort` the transaction (always fails with error "aborted").
    pub fn abort() -> Self {
        Self::new("abort", json!({}))
    }

    /// The op's name (`insert`, `update`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        Value::Object(self.json.clone())
    }
}

/// The result of one successful op.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpResult {
    /// `insert`: the new row's uuid.
    pub uuid: Option<Uuid>,
    /// `update`, `mutate`, `delete`: how many rows matched.
    pub count: Option<u64>,
    /// `select`: the rows.
    pub rows: Option<Vec<Row>>,
}

impl OpResult {
    fn from_json(v: &Value) -> OpResult {
        let Value::Object(m) = v else {
            return OpResult::default();
        };
        OpResult {
            uuid: m.get("uuid").and_then(datum::read_uuid),
            count: m.get("count").and_then(Value::as_u64),
            rows: m
                .get("rows")
                .and_then(Value::as_array)
                .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect()),
        }
    }
}

/// The `params` of a `transact` request.
pub fn transact_params(db: &str, ops: &[Op]) -> Value {
    let mut params = vec![json!(db)];
    params.extend(ops.iter().map(Op::to_json));
    Value::Array(params)
}

/// Interprets the result of a `transact`: the first op (or the extra trailing commit result) with
/// an `error` becomes [`OvsdbError::OpFailed`] naming its index.
pub fn transact_results(db: &str, ops: &[Op], result: &Value) -> Result<Vec<OpResult>, OvsdbError> {
    let Value::Array(results) = result else {
        return Err(OvsdbError::protocol("transact result", format!("not an array: {result}")));
    };
    for (index, r) in results.iter().enumerate() {
        if let Some(err) = r.get("error").filter(|e| !e.is_null()) {
            let error = err.as_str().map(str::to_string).unwrap_or_else(|| err.to_string());
            let details = match r.get("details") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let op = ops.get(index).map(Op::name).unwrap_or("commit").to_string();
            return Err(OvsdbError::OpFailed { db: db.to_string(), index, op, error, details });
        }
    }
    if results.len() < ops.len() {
        return Err(OvsdbError::protocol(
            "transact result",
            format!("{} results for {} ops and no error", results.len(), ops.len()),
        ));
    }
    Ok(results.iter().take(ops.len()).map(OpResult::from_json).collect())
}

/// What to monitor in one table: `columns: None` means every column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTable {
    pub table: String,
    pub columns: Option<Vec<String>>,
}

impl MonitorTable {
    /// Every column of `table`.
    pub fn all(table: &str) -> Self {
        MonitorTable { table: table.to_string(), columns: None }
    }
    /// The given columns of `table`.
    pub fn columns(table: &str, columns: &[&str]) -> Self {
        MonitorTable {
            table: table.to_string(),
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
        }
    }
}

/// The `params` of a `monitor` request.
pub fn monitor_params(db: &str, monitor_id: &Value, tables: &[MonitorTable]) -> Value {
    let mut reqs = Map::new();
    for t in tables {
        let mut req = Map::new();
        if let Some(cols) = &t.columns {
            req.insert("columns".into(), json!(cols));
        }
        reqs.insert(t.table.clone(), Value::Object(req));
    }
    json!([db, monitor_id, reqs])
}

/// One row's change in a monitor update: `old` is absent for inserts (and the initial rows),
/// `new` is absent for deletes. `new` carries every monitored column; `old` (in RFC 7047
/// monitor updates) only the columns that changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowUpdate {
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// Table name -> row uuid -> change: the initial contents of a monitor and its `update`s.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableUpdates(pub BTreeMap<String, BTreeMap<Uuid, RowUpdate>>);

impl TableUpdates {
    /// Parses the wire form; anything malformed is an error (a replica must not silently skip).
    pub fn from_json(v: &Value) -> Result<Self, OvsdbError> {
        let bad = |what: String| OvsdbError::protocol("table-updates", what);
        let Value::Object(tables) = v else {
            return Err(bad(format!("not an object: {v}")));
        };
        let mut out = BTreeMap::new();
        for (table, rows) in tables {
            let Value::Object(rows) = rows else {
                return Err(bad(format!("table {table}: not an object")));
            };
            let mut t = BTreeMap::new();
            for (uuid, upd) in rows {
                let u = Uuid::parse_str(uuid)
                    .map_err(|_| bad(format!("table {table}: bad row uuid {uuid:?}")))?;
                let Value::Object(upd) = upd else {
                    return Err(bad(format!("table {table} row {uuid}: not an object")));
                };
                let side = |k: &str| -> Result<Option<Row>, OvsdbError> {
                    match upd.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::Object(r)) => Ok(Some(r.clone())),
                        Some(_) => Err(bad(format!("table {table} row {uuid}: {k:?} is not an object"))),
                    }
                };
                t.insert(u, RowUpdate { old: side("old")?, new: side("new")? });
            }
            out.insert(table.clone(), t);
        }
        Ok(TableUpdates(out))
    }

    /// True when no table has a change.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeMap::is_empty)
    }
}

/// What the server sent, as the shell needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The reply to our request `id`: its `result`, or its `error`.
    Reply { id: u64, result: Result<Value, Value> },
    /// An `update` notification of monitor `monitor_id`.
    Update { monitor_id: Value, updates: TableUpdates },
    /// Any other notification (`locked`, `stolen`, ...).
    Notification { method: String, params: Value },
}

/// The sans-IO JSON-RPC session of one connection.
#[derive(Debug)]
pub struct Session {
    target: String,
    framer: JsonFramer,
    next_id: u64,
    outgoing: VecDeque<Vec<u8>>,
}

impl Session {
    /// A session for the connection to `target` (used in error messages).
    pub fn new(target: &str) -> Self {
        Self::with_framer(target, JsonFramer::new())
    }

    /// A session with a specific framer (message size bound).
    pub fn with_framer(target: &str, framer: JsonFramer) -> Self {
        Session { target: target.to_string(), framer, next_id: 1, outgoing: VecDeque::new() }
    }

    /// Numbers a request and encodes it; the caller writes the bytes.
    pub fn request(&mut self, method: &str, params: Value) -> (u64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let bytes =
            serde_json::to_vec(&json!({"method": method, "params": params, "id": id})).unwrap_or_default();
        (id, bytes)
    }

    /// Feeds bytes read from the socket.
    pub fn receive(&mut self, data: &[u8]) {
        self.framer.push(data);
    }

    /// Bytes the session wants written (answers to the server's requests, e.g. `echo`).
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    /// The next message for the shell, `Ok(None)` when more bytes are needed. An error means the
    /// connection is unusable.
    pub fn poll(&mut self) -> Result<Option<Incoming>, OvsdbError> {
        loop {
            let bytes = match self.framer.next_message() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(source) => return Err(OvsdbError::Framing { target: self.target.clone(), source }),
            };
            let msg: Value = serde_json::from_slice(&bytes).map_err(|e| {
                OvsdbError::protocol(format!("message from {}", self.target), format!("invalid JSON: {e}"))
            })?;
            if let Some(incoming) = self.handle(msg)? {
                return Ok(Some(incoming));
            }
        }
    }

    fn handle(&mut self, msg: Value) -> Result<Option<Incoming>, OvsdbError> {
        let context = || format!("message from {}", self.target);
        let Value::Object(mut m) = msg else {
            return Err(OvsdbError::protocol(context(), format!("not a JSON object: {msg}")));
        };
        let id = m.remove("id").unwrap_or(Value::Null);
        if let Some(method) = m.get("method") {
            let Some(method) = method.as_str().map(str::to_string) else {
                return Err(OvsdbError::protocol(context(), "method is not a string"));
            };
            let params = m.remove("params").unwrap_or(Value::Null);
            if !id.is_null() {
                // A request from the server: answer echo, refuse anything else.
                let reply = if method == "echo" {
                    json!({"result": params, "error": null, "id": id})
                } else {
                    tracing::debug!(target = %self.target, %method, "refusing request from server");
                    json!({"result": null, "error": format!("unknown method {method}"), "id": id})
                };
                self.outgoing.push_back(serde_json::to_vec(&reply).unwrap_or_default());
                return Ok(None);
            }
            if method == "update" {
                let (monitor_id, updates) = match params {
                    Value::Array(mut p) if p.len() == 2 => {
                        let updates = p.pop().unwrap_or(Value::Null);
                        (p.pop().unwrap_or(Value::Null), updates)
                    }
                    other => {
                        return Err(OvsdbError::protocol(context(), format!("bad update params: {other}")));
                    }
                };
                let updates = TableUpdates::from_json(&updates)?;
                return Ok(Some(Incoming::Update { monitor_id, updates }));
            }
            return Ok(Some(Incoming::Notification { method, params }));
        }
        // A reply.
        let Some(id) = id.as_u64() else {
            tracing::debug!(target = %self.target, %id, "ignoring reply with an id we never used");
            return Ok(None);
        };
        let error = m.remove("error").unwrap_or(Value::Null);
        let result = if error.is_null() { Ok(m.remove("result").unwrap_or(Value::Null)) } else { Err(error) };
        Ok(Some(Incoming::Reply { id, result }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::{named_uuid, row, set, str_map};

    #[test]
    fn op_wire_forms() {
        let ins = Op::insert("Interface", row([("name", json!("p1"))])).with_uuid_name("i");
        assert_eq!(
            ins.to_json(),
            json!({"op": "insert", "table": "Interface", "row": {"name": "p1"}, "uuid-name": "i"})
        );
        let mu = Op::mutate(
            "Bridge",
            vec![Condition::name("br")],
            vec![Mutation::insert("ports", set([named_uuid("p")]))],
        );
        assert_eq!(
            mu.to_json(),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br"]],
                   "mutations": [["ports", "insert", ["set", [["named-uuid", "p"]]]]]})
        );
        let w = Op::wait("Bridge", vec![], &["name"], WaitUntil::NotEqual, vec![], Some(0));
        assert_eq!(
            w.to_json(),
            json!({"op": "wait", "table": "Bridge", "where": [], "columns": ["name"], "until": "!=",
                   "rows": [], "timeout": 0})
        );
        let sel = Op::select("Port", vec![], Some(&["name"]));
        assert_eq!(sel.to_json(), json!({"op": "select", "table": "Port", "where": [], "columns": ["name"]}));
        assert_eq!(Op::comment("hi").to_json(), json!({"op": "comment", "comment": "hi"}));
        assert_eq!(
            transact_params("db", &[Op::delete("T", vec![])]),
            json!(["db", {"op": "delete", "table": "T", "where": []}])
        );
        let _ = str_map([("a", "b")]);
    }

    #[test]
    fn transact_errors_name_the_op() {
        let ops = vec![Op::comment("x"), Op::insert("T", Row::new()), Op::delete("T", vec![])];
        let res = json!([{}, {"error": "constraint violation", "details": "dup"}, null]);
        match transact_results("Open_vSwitch", &ops, &res) {
            Err(OvsdbError::OpFailed { index: 1, op, error, details, .. }) => {
                assert_eq!(
                    (op.as_str(), error.as_str(), details.as_str()),
                    ("insert", "constraint violation", "dup")
                )
            }
            other => panic!("{other:?}"),
        }
        // A commit failure is an extra result past the ops.
        let res = json!([{}, {"uuid": ["uuid", "00000000-0000-0000-0000-000000000001"]}, {"count": 0},
                         {"error": "referential integrity violation"}]);
        match transact_results("db", &ops, &res) {
            Err(e @ OvsdbError::OpFailed { index: 3, .. }) => {
                assert!(e.to_string().contains("op 3 (commit)"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let res = json!([{}, {"uuid": ["uuid", "00000000-0000-0000-0000-000000000001"]}, {"count": 2}]);
        let r = transact_results("db", &ops, &res).unwrap();
        assert_eq!(r[1].uuid, Some(Uuid::from_u128(1)));
        assert_eq!(r[2].count, Some(2));
        assert!(transact_results("db", &ops, &json!({})).is_err());
        assert!(transact_results("db", &ops, &json!([{}])).is_err());
    }

    #[test]
    fn session_answers_echo_and_routes_replies() {
        let mut s = Session::new("unix:/x");
        let (id, bytes) = s.request("list_dbs", json!([]));
        let req: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(req, json!({"method": "list_dbs", "params": [], "id": id}));
        let u = "6f1cc0e5-7b1a-4a3e-9a2e-0a4c1a1f0c01";
        let stream = format!(
            r#"{{"id":"echo","method":"echo","params":[]}}{{"id":{id},"result":["Open_vSwitch"],"error":null}}
               {{"id":null,"method":"update","params":["m1",{{"Bridge":{{"{u}":{{"new":{{"name":"br"}}}}}}}}]}}
               {{"id":99,"result":null,"error":{{"error":"unknown database"}}}}{{"method":"locked","params":["l"],"id":null}}"#
        );
        s.receive(stream.as_bytes());
        assert_eq!(s.poll().unwrap(), Some(Incoming::Reply { id, result: Ok(json!(["Open_vSwitch"])) }));
        let echo: Value = serde_json::from_slice(&s.take_outgoing().unwrap()).unwrap();
        assert_eq!(echo, json!({"id": "echo", "result": [], "error": null}));
        match s.poll().unwrap() {
            Some(Incoming::Update { monitor_id, updates }) => {
                assert_eq!(monitor_id, json!("m1"));
                let r = &updates.0["Bridge"][&Uuid::parse_str(u).unwrap()];
                assert_eq!(r.new.as_ref().unwrap()["name"], json!("br"));
                assert!(r.old.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.poll().unwrap(),
            Some(Incoming::Reply { id: 99, result: Err(json!({"error": "unknown database"})) })
        );
        assert!(
            matches!(s.poll().unwrap(), Some(Incoming::Notification { method, .. }) if method == "locked")
        );
        assert_eq!(s.poll().unwrap(), None);
    }

    #[test]
    fn session_rejects_garbage_without_panicking() {
        for bad in [
            r#"[1,2]"#,
            r#"{"method":5}"#,
            r#"{"method":"update","params":[1],"id":null}"#,
            r#"{"method":"update","params":["m",{"T":{"not-a-uuid":{}}}],"id":null}"#,
            r#"{"method":"update","params":["m",{"T":{"6f1cc0e5-7b1a-4a3e-9a2e-0a4c1a1f0c01":{"new":3}}}],"id":null}"#,
            r#"{"a":tru}"#,
            "}",
        ] {
            let mut s = Session::new("t");
            s.receive(bad.as_bytes());
            assert!(s.poll().is_err(), "{bad}");
        }
        // Other server requests are refused, not fatal.
        let mut s = Session::new("t");
        s.receive(br#"{"method":"steal","params":[],"id":7}"#);
        assert_eq!(s.poll().unwrap(), None);
        let reply: Value = serde_json::from_slice(&s.take_outgoing().unwrap()).unwrap();
        assert_eq!(reply["id"], json!(7));
        assert!(reply["error"].is_string());
    }
}
