//! List semantics over Neutron views: filters by any top-level attribute (repeated key = OR,
//! booleans, `fixed_ips=ip_address=...`), `fields=`, `sort_key`/`sort_dir`, `limit`/`marker` with a
//! `<collection>_links` "next" link, and `fields=` on single-object GETs.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Query keys that are not filters.
const CONTROL: &[&str] = &["fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "verbose"];
/// Tag filters: tern keeps no tags, so `tags`/`tags-any` match nothing, `not-tags*` match all.
const NOT_TAGS: &[&str] = &["not-tags", "not-tags-any"];

#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    limit: Option<usize>,
    marker: Option<String>,
    sort: Vec<(String, bool)>,
    page_reverse: bool,
    /// The query minus `marker`, for the next link.
    keep: Vec<(String, String)>,
}

/// A page in id order ([`ListQuery::id_page`]): the first `limit` items after `marker`, or (when
/// `reverse`) the last `limit` items before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdPage<'a> {
    pub limit: usize,
    pub marker: Option<&'a str>,
    pub reverse: bool,
}

impl ListQuery {
    pub(crate) fn parse(pairs: Vec<(String, String)>) -> ApiResult<ListQuery> {
        let mut q = ListQuery::default();
        let mut dirs = Vec::new();
        for (k, v) in &pairs {
            match k.as_str() {
                "fields" => q.fields.extend(v.split(',').filter(|f| !f.is_empty()).map(str::to_string)),
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Bad limit request: Limit must be an integer 0 or greater and not '{v}'"
                        ))
                    })?;
                    if n < 0 {
                        return Err(ApiError::bad_request(format!(
                            "Bad limit request: Limit must be an integer 0 or greater and not '{v}'"
                        )));
                    }
                    q.limit = (n > 0).then_some(n as usize);
                }
                "marker" => q.marker = Some(v.clone()),
                "sort_key" => q.sort.push((v.clone(), true)),
                "sort_dir" => match v.as_str() {
                    "asc" => dirs.push(true),
                    "desc" => dirs.push(false),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid input for sort_dir. Reason: '{v}' is not a valid value (asc or desc)."
                        )))
                    }
                },
                "page_reverse" => q.page_reverse = matches!(v.to_ascii_lowercase().as_str(), "true" | "1"),
                k if CONTROL.contains(&k) || NOT_TAGS.contains(&k) => {}
                _ => match q.filters.iter_mut().find(|(f, _)| f == k) {
                    Some((_, vals)) => vals.push(v.clone()),
                    None => q.filters.push((k.clone(), vec![v.clone()])),
                },
            }
            if k != "marker" {
                q.keep.push((k.clone(), v.clone()));
            }
        }
        if dirs.len() > q.sort.len() {
            return Err(ApiError::bad_request("The number of sort_keys and sort_dirs must be same"));
        }
        for (i, asc) in dirs.into_iter().enumerate() {
            q.sort[i].1 = asc;
        }
        Ok(q)
    }

    /// The values of the filter on `key` (an item matches any of them), if the query has one.
    pub(crate) fn filter_values(&self, key: &str) -> Option<&[String]> {
        self.filters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// `limit`, `marker` and `page_reverse`, when the query asks for a page in the default order
    /// (by id): a page a ranged read of ids can serve. `None` without a limit, or with a
    /// `sort_key` (then [`ListQuery::respond`] must see every item to sort them).
    pub(crate) fn id_page(&self) -> Option<IdPage<'_>> {
        let limit = self.limit?;
        self.sort.is_empty().then_some(IdPage {
            limit,
            marker: self.marker.as_deref(),
            reverse: self.page_reverse,
        })
    }

    /// Only `fields=` (for GET of one object).
    pub(crate) fn project(&self, view: Map<String, Value>) -> Map<String, Value> {
        select_fields(view, &self.fields)
    }

    /// Filters, sorts, pages and projects `items` into `{"<collection>": [...], ...links}`.
    /// `known` are the attribute names of the resource (a filter on anything else is a 400).
    /// `path` is the collection URL path (`/v2.0/networks`), `host` where the
    /// request reached the API (`http://HOST`, see `util::host`).
    pub(crate) fn respond(
        &self,
        items: Vec<Map<String, Value>>,
        known: &Map<String, Value>,
        collection: &str,
        path: &str,
        host: &str,
    ) -> ApiResult<Value> {
        for (key, _) in &self.filters {
            if !known.contains_key(key) && key != "tags" && key != "tags-any" {
                return Err(ApiError::bad_request(format!("[{key}] is invalid attribute for filtering")));
            }
        }
        for (key, _) in &self.sort {
            if !known.contains_key(key) {
                return Err(ApiError::bad_request(format!("{key} is an invalid attribute for sort_key")));
            }
        }
        // Only what the caller may see, without what only administrators see (crate::policy).
        let viewer = crate::policy::Viewer::of(crate::policy::singular(collection).unwrap_or(""));
        let mut items: Vec<Map<String, Value>> = items
            .into_iter()
            .filter(|i| viewer.sees(i) && self.matches(i))
            .map(|mut i| {
                viewer.strip(&mut i);
                i
            })
            .collect();
        let by_id_only = self.sort.is_empty();
        items.sort_by(|a, b| {
            for (key, asc) in &self.sort {
                let o = cmp_values(a.get(key), b.get(key));
                if o != Ordering::Equal {
                    return if *asc { o } else { o.reverse() };
                }
            }
            cmp_values(a.get("id"), b.get("id"))
        });
        let id_of =
            |m: &Map<String, Value>| m.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(marker) = &self.marker {
            match items.iter().position(|i| id_of(i) == *marker) {
                Some(pos) if self.page_reverse => items.truncate(pos),
                Some(pos) => {
                    items.drain(..=pos);
                }
                // The marker object is gone: in id order the position is still well defined.
                None if by_id_only => {
                    if self.page_reverse {
                        items.retain(|i| id_of(i) < *marker)
                    } else {
                        items.retain(|i| id_of(i) > *marker)
                    }
                }
                None => {
                    return Err(ApiError::new(
                        axum::http::StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("Marker {marker} could not be found."),
                    ))
                }
            }
        }
        let mut links = Vec::new();
        if let Some(limit) = self.limit {
            if items.len() > limit {
                if self.page_reverse {
                    items.drain(..items.len() - limit);
                } else {
                    items.truncate(limit);
                }
                let next_marker = if self.page_reverse { items.first() } else { items.last() };
                if let Some(last) = next_marker {
                    let mut pairs = self.keep.clone();
                    pairs.push(("marker".into(), id_of(last)));
                    links.push(serde_json::json!({
                        "rel": if self.page_reverse { "previous" } else { "next" },
                        "href": format!("{host}{path}?{}", encode_query(&pairs)),
                    }));
                }
            }
        }
        let items: Vec<Value> =
            items.into_iter().map(|i| Value::Object(select_fields(i, &self.fields))).collect();
        let mut out = Map::new();
        out.insert(collection.to_string(), Value::Array(items));
        if !links.is_empty() {
            out.insert(format!("{collection}_links"), Value::Array(links));
        }
        Ok(Value::Object(out))
    }

    /// Whether `item` passes every filter.
    pub(crate) fn matches(&self, item: &Map<String, Value>) -> bool {
        self.filters.iter().all(|(key, wanted)| {
            if key == "fixed_ips" {
                return match_fixed_ips(item.get(key), wanted);
            }
            let v = item.get(key).unwrap_or(&Value::Null);
            wanted.iter().any(|w| value_matches(v, w))
        })
    }
}

fn select_fields(view: Map<String, Value>, fields: &[String]) -> Map<String, Value> {
    if fields.is_empty() {
        return view;
    }
    view.into_iter().filter(|(k, _)| fields.iter().any(|f| f == k)).collect()
}

/// Neutron's `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y` (also `ip_address_substr`):
/// OR within one sub-key, AND across sub-keys.
fn match_fixed_ips(v: Option<&Value>, wanted: &[String]) -> bool {
    let ips: &[Value] = v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let mut by_key: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in wanted {
        let (k, val) = w.split_once('=').unwrap_or(("ip_address", w.as_str()));
        match by_key.iter_mut().find(|(kk, _)| *kk == k) {
            Some((_, vals)) => vals.push(val),
            None => by_key.push((k, vec![val])),
        }
    }
    by_key.iter().all(|(k, vals)| {
        ips.iter().any(|ip| {
            if *k == "ip_address_substr" {
                let addr = ip.get("ip_address").and_then(Value::as_str).unwrap_or_default();
                return vals.iter().any(|v| addr.contains(v));
            }
            let field = ip.get(*k).unwrap_or(&Value::Null);
            vals.iter().any(|v| value_matches(field, v))
        })
    })
}

/// Whether a view value equals a filter's text form.
fn value_matches(v: &Value, wanted: &str) -> bool {
    match v {
        Value::String(s) => s == wanted,
        Value::Bool(b) => match wanted.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == wanted,
        Value::Null => wanted.is_empty() || wanted == "None" || wanted == "null",
        Value::Array(a) => a.iter().any(|e| !e.is_array() && value_matches(e, wanted)),
        Value::Object(_) => false,
    }
}

fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(_) => 4,
    }
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x @ (Value::Array(_) | Value::Object(_))), Some(y @ (Value::Array(_) | Value::Object(_)))) => {
            x.to_string().cmp(&y.to_string())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `application/x-www-form-urlencoded` for the next link.
fn encode_query(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Map<String, Value>> {
        (0..5)
            .map(|i| {
                json!({"id": format!("id{i}"), "name": if i % 2 == 0 { "even" } else { "odd" },
                       "admin_state_up": i != 3, "mtu": 1400 + i,
                       "fixed_ips": [{"subnet_id": "s", "ip_address": format!("10.0.0.{i}")}]})
                .as_object()
                .cloned()
                .unwrap()
            })
            .collect()
    }

    fn run(q: &[(&str, &str)]) -> ApiResult<Value> {
        let pairs = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let known = items().remove(0);
        ListQuery::parse(pairs)?.respond(items(), &known, "things", "/v2.0/things", "http://h:1")
    }

    fn ids(v: &Value) -> Vec<String> {
        v["things"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap_or("-").to_string()).collect()
    }

    #[test]
    fn filters() {
        assert_eq!(ids(&run(&[("name", "odd")]).unwrap()), ["id1", "id3"]);
        assert_eq!(ids(&run(&[("id", "id0"), ("id", "id4")]).unwrap()), ["id0", "id4"]);
        assert_eq!(ids(&run(&[("admin_state_up", "False")]).unwrap()), ["id3"]);
        assert_eq!(ids(&run(&[("mtu", "1402")]).unwrap()), ["id2"]);
        assert_eq!(ids(&run(&[("fixed_ips", "ip_address=10.0.0.4")]).unwrap()), ["id4"]);
        assert_eq!(
            ids(&run(&[("fixed_ips", "subnet_id=s"), ("name", "even")]).unwrap()),
            ["id0", "id2", "id4"]
        );
        assert!(ids(&run(&[("tags", "x")]).unwrap()).is_empty());
        assert_eq!(run(&[("bogus", "1")]).unwrap_err().status, 400);
    }

    #[test]
    fn paging_sorting_fields() {
        let v = run(&[("limit", "2")]).unwrap();
        assert_eq!(ids(&v), ["id0", "id1"]);
        let next = v["things_links"][0]["href"].as_str().unwrap();
        assert_eq!(next, "http://h:1/v2.0/things?limit=2&marker=id1");
        let v = run(&[("limit", "2"), ("marker", "id3")]).unwrap();
        assert_eq!(ids(&v), ["id4"]);
        assert!(v.get("things_links").is_none());
        assert_eq!(ids(&run(&[("marker", "id2x")]).unwrap()), ["id3", "id4"]);
        assert_eq!(
            ids(&run(&[("sort_key", "mtu"), ("sort_dir", "desc"), ("limit", "2")]).unwrap()),
            ["id4", "id3"]
        );
        let v = run(&[("fields", "name"), ("limit", "1")]).unwrap();
        assert_eq!(v["things"], json!([{"name": "even"}]));
        assert_eq!(run(&[("limit", "-1")]).unwrap_err().status, 400);
        assert_eq!(run(&[("sort_key", "nope")]).unwrap_err().status, 400);
    }
}
