//! Shared plumbing of the handlers: the server state, typed NB reads, operations as one NB
//! transaction ([`transact`]) retried when they lose a race, JSON responses, and derived ids.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};
use tern_model::Resource;
use tern_store::nb::{Committed, Nb, Tx};

use crate::error::{ApiError, ApiResult};

/// What every handler gets.
pub(crate) struct Ctx {
    pub nb: Nb,
    /// See [`crate::ApiConfig::underlay_mtu`].
    pub underlay_mtu: u32,
}

pub(crate) type State = axum::extract::State<Arc<Ctx>>;

/// How many times an operation that lost a race with another writer is tried in all (then the
/// last conflict is the answer, a 409).
const ATTEMPTS: usize = 16;

/// Runs `op` as one NB transaction: `op` reads through the [`Tx`] it is given (each object read
/// is guarded), stages its writes and commits; the whole of it runs again, on a new `Tx`, while
/// it fails with a retryable error (the commit lost a race: something it read changed).
pub(crate) async fn transact<T, F, Fut>(nb: &Nb, mut op: F) -> ApiResult<T>
where
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let mut attempt = 1;
    loop {
        match op(nb.tx_attempt(attempt as u32)).await {
            Err(e) if e.retry && attempt < ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// The object as `tx` reads it (guarded).
pub(crate) async fn tx_get<T: Resource>(tx: &Tx, id: &str) -> ApiResult<Option<T>> {
    Ok(tx.get(T::KIND, id).await?.and_then(|s| T::from_object(s.object)))
}

/// The object a request names, as `tx` reads it (guarded): Neutron's 404 for its kind if it does
/// not exist or the caller may not see it, a 403 if the request would change it and the caller
/// may only see it ([`crate::policy::check_visible`]).
pub(crate) async fn tx_fetch<T: Resource>(tx: &Tx, id: &str) -> ApiResult<T> {
    let obj = tx.get(T::KIND, id).await?.map(|s| s.object);
    let obj = obj.filter(|o| o.kind() == T::KIND).ok_or_else(|| ApiError::not_found(T::KIND, id))?;
    let shared_parent = match crate::policy::parent_network(&obj) {
        Some(net) => tx_get::<tern_model::Network>(tx, net).await?.is_some_and(|n| n.shared),
        None => false,
    };
    crate::policy::check_visible(&obj, shared_parent)?;
    T::from_object(obj).ok_or_else(|| ApiError::not_found(T::KIND, id))
}

/// [`tx_fetch`] for a read-modify-write: 412 if `If-Match` names another revision.
pub(crate) async fn tx_fetch_if_match<T: Resource>(tx: &Tx, id: &str, expected: Option<u64>) -> ApiResult<T> {
    let cur: T = tx_fetch(tx, id).await?;
    crate::input::check_if_match(expected, cur.revision_number())?;
    Ok(cur)
}

/// Stages a put of `t` in `tx`; returns its id.
pub(crate) fn stage<T: Resource>(tx: &Tx, t: T) -> String {
    tx.put(t.into_object())
}

/// Stages the delete of a `T` found by a listing, read through `tx` first (so its vanishing
/// meanwhile is a lost race, not a 404); one already gone is skipped.
pub(crate) async fn stage_delete<T: Resource>(tx: &Tx, id: &str) -> ApiResult<()> {
    if tx_get::<T>(tx, id).await?.is_some() {
        tx.delete(T::KIND, id);
    }
    Ok(())
}

/// The `T` with `id` a committed transaction stored.
pub(crate) fn committed<T: Resource>(c: &Committed, id: &str) -> ApiResult<T> {
    c.objects
        .iter()
        .find(|s| s.object.kind() == T::KIND && s.object.id() == id)
        .and_then(|s| T::from_object(s.object.clone()))
        .ok_or_else(|| ApiError::internal(format!("the NB did not store {} {id}", T::KIND)))
}

/// Commits a transaction whose first put is a `T`, and returns it as stored.
pub(crate) async fn commit_first<T: Resource>(tx: Tx) -> ApiResult<T> {
    let c = tx.commit().await?;
    c.objects
        .into_iter()
        .next()
        .and_then(|s| T::from_object(s.object))
        .ok_or_else(|| ApiError::internal("the NB returned another kind"))
}

pub(crate) async fn get<T: Resource>(nb: &Nb, id: &str) -> ApiResult<Option<T>> {
    Ok(nb.get(T::KIND, id).await?.and_then(|s| T::from_object(s.object)))
}

/// [`tx_fetch`] outside a transaction.
pub(crate) async fn fetch<T: Resource>(nb: &Nb, id: &str) -> ApiResult<T> {
    let obj = nb.get(T::KIND, id).await?.map(|s| s.object);
    let obj = obj.filter(|o| o.kind() == T::KIND).ok_or_else(|| ApiError::not_found(T::KIND, id))?;
    let shared_parent = match crate::policy::parent_network(&obj) {
        Some(net) => get::<tern_model::Network>(nb, net).await?.is_some_and(|n| n.shared),
        None => false,
    };
    crate::policy::check_visible(&obj, shared_parent)?;
    T::from_object(obj).ok_or_else(|| ApiError::not_found(T::KIND, id))
}

/// `cur` with the request's attributes `m` applied, validated.
pub(crate) fn patched<T: Resource>(cur: &T, m: &Map<String, Value>) -> ApiResult<T> {
    crate::input::build_valid(&json_map(cur), m)
}

/// A DELETE with nothing to check beyond `If-Match` (the NB refuses what is still in use), as
/// one transaction.
pub(crate) async fn delete_if_match<T: Resource>(nb: &Nb, id: &str, expected: Option<u64>) -> ApiResult<()> {
    transact(nb, |tx| async move {
        tx_fetch_if_match::<T>(&tx, id, expected).await?;
        tx.delete(T::KIND, id);
        tx.commit().await?;
        Ok(())
    })
    .await
}

/// `GET /v2.0/<collection>`: every stored `T` through `view`, with the query's filters, fields,
/// sorting and paging; `known` (the view of a default object) names the attributes a filter may use.
pub(crate) async fn list_answer<T: Resource>(
    nb: &Nb,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
    (collection, path): (&str, &str),
    view: impl Fn(&T) -> Map<String, Value>,
    known: Map<String, Value>,
) -> ApiResult<Json<Value>> {
    let q = crate::query::ListQuery::parse(pairs)?;
    let items = list::<T>(nb).await?.iter().map(view).collect();
    Ok(Json(q.respond(items, &known, collection, path, &host(headers))?))
}

/// `GET /v2.0/<collection>/{id}`: one `T` through `view` as `{"<singular>": ...}`, with the query's
/// fields.
pub(crate) async fn show_answer<T: Resource>(
    nb: &Nb,
    id: &str,
    pairs: Vec<(String, String)>,
    singular: &str,
    view: impl Fn(&T) -> Map<String, Value>,
) -> ApiResult<Response> {
    let q = crate::query::ListQuery::parse(pairs)?;
    let t: T = fetch(nb, id).await?;
    Ok(respond(StatusCode::OK, singular, q.project(view(&t))))
}

/// A PUT of the plain kind: `T` as stored (`If-Match` checked) with the request's attributes `m`
/// applied, validated and stored, as one transaction (retried on a concurrent write).
pub(crate) async fn update_plain<T: Resource>(
    nb: &Nb,
    id: &str,
    expected: Option<u64>,
    m: &Map<String, Value>,
) -> ApiResult<T> {
    transact(nb, |tx| async move {
        let cur: T = tx_fetch_if_match(&tx, id, expected).await?;
        stage(&tx, patched(&cur, m)?);
        commit_first(tx).await
    })
    .await
}

/// Every object of a kind, sorted by id.
pub(crate) async fn list<T: Resource>(nb: &Nb) -> ApiResult<Vec<T>> {
    let (items, _) = nb.list(T::KIND).await?;
    Ok(items.into_iter().filter_map(|s| T::from_object(s.object)).collect())
}

/// Nanoseconds since the Unix epoch (the Migration records' timestamps).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `{"<singular>": view}` with a status.
pub(crate) fn respond(status: StatusCode, singular: &str, mut view: Map<String, Value>) -> Response {
    crate::policy::Viewer::of(singular).strip(&mut view);
    let mut out = Map::new();
    out.insert(singular.to_string(), Value::Object(view));
    (status, Json(Value::Object(out))).into_response()
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Where the client reached the API, for links: `SCHEME://HOST` with the Host it sent
/// (`localhost` if none), and https when served over TLS (which sets `X-Forwarded-Proto`, see
/// `tls::serve`) or when a proxy in front says so in `X-Forwarded-Proto`.
pub(crate) fn host(headers: &HeaderMap) -> String {
    let scheme = match headers.get("x-forwarded-proto").map(|v| v.as_bytes()) {
        Some(b"https") => "https",
        _ => "http",
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A UUID-shaped id derived from `seed` (FNV-1a, 128 bits): the same seed gives the same id on
/// every server and release, so concurrent creators of a per-project singleton agree on its id.
pub(crate) fn derived_uuid(seed: &str) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in seed.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let mut bytes = h.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5-like
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `project_id` and its alias `tenant_id`, for views.
pub(crate) fn add_project(view: &mut Map<String, Value>, project: &str) {
    view.insert("tenant_id".into(), Value::String(project.to_string()));
    view.insert("project_id".into(), Value::String(project.to_string()));
}

/// A model object's JSON form as a map.
pub(crate) fn json_map<T: serde::Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuids_are_stable_and_distinct() {
        let a = derived_uuid("default-sg:p1");
        assert_eq!(a, derived_uuid("default-sg:p1"));
        assert_ne!(a, derived_uuid("default-sg:p2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
    }
}
