//! Port listings that read the NB's port index (`tern_store::nb::PortField`: entries by network
//! and by device, in id order) instead of every port: `GET /v2.0/ports` filtered by `device_id`
//! or `network_id`, or asking for a page (`limit`, `marker`, `page_reverse`) in the default
//! order; and the API's own lookups of a device's ports (router interfaces and gateways, floating
//! IP address ports).
//!
//! A listing answers exactly what filtering every port would: [`ListQuery::respond`] still
//! filters, sorts, pages and projects what is read here; only what is read changes:
//! * an `id` filter: those ports (batched gets);
//! * else a `device_id` filter, else a `network_id` filter: the ports of each value given;
//! * else every port.
//!
//! When the query asks for a page in id order (a `limit` and no `sort_key`) of every port or of
//! the ports of one value, the read itself is paged: the ids after the marker (before it with
//! `page_reverse`) in growing chunks, until one more matching port than the limit is found
//! (respond needs it to know there is a next page) or the source ends. A page of 100 ports of a
//! cloud of 10,000 reads about 100 keys. Otherwise (several values, an `id` filter, a
//! `sort_key`) the whole source is read and respond pages it. Two cases read every port: a
//! `sort_key` with no `id`/`device_id`/`network_id` filter (the answer depends on every port's
//! sort key), and any query while the index is not built yet (`tern server` builds it at start
//! on a store that predates it; until then listings scan, as before the index).
//!
//! Reads through the index are not one snapshot: a port that changes while it is read is seen
//! as it is now (and filtered on that), one deleted meanwhile is left out, one created meanwhile
//! may be missed: as if each port were read at some moment during the request.

use serde_json::{Map, Value};
use tern_model::{Kind, Port, Resource};
use tern_store::nb::{Nb, PortField, PortSource, Stored};

use crate::agents::Liveness;
use crate::error::ApiResult;
use crate::ports::{live_view, view};
use crate::query::ListQuery;
use crate::util::Ctx;

/// The most ids one chunk of a paged read asks for.
const MAX_CHUNK: usize = 1000;

/// Port views, with the liveness of the chassis read once, and only if a port is bound.
struct Views<'a> {
    nb: &'a Nb,
    live: Option<Liveness>,
}

impl Views<'_> {
    async fn of(&mut self, p: &Port) -> ApiResult<Map<String, Value>> {
        if p.binding_host_id.is_empty() {
            return Ok(view(p));
        }
        if self.live.is_none() {
            self.live = Some(Liveness::read(self.nb).await?);
        }
        Ok(self.live.as_ref().map_or_else(|| view(p), |live| live_view(p, live)))
    }

    /// The views of the stored ports that pass the query's filters.
    async fn matching(&mut self, q: &ListQuery, stored: Vec<Stored>) -> ApiResult<Vec<Map<String, Value>>> {
        let mut out = Vec::new();
        for s in stored {
            let Some(p) = Port::from_object(s.object) else { continue };
            let v = self.of(&p).await?;
            if q.matches(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// The views `GET /v2.0/ports` with query `q` must pick from (see the module documentation):
/// every port that can be in the answer, and at least one more than the page when there is a
/// next one.
pub(crate) async fn port_views(ctx: &Ctx, q: &ListQuery) -> ApiResult<Vec<Map<String, Value>>> {
    let nb = &ctx.nb;
    let mut views = Views { nb, live: None };
    if !nb.port_index_ready().await? {
        // A store that predates the index, until `tern server` has built it: every port, as
        // before the index.
        let (stored, _) = nb.list(Kind::Port).await?;
        return views.matching(q, stored).await;
    }
    if let Some(ids) = q.filter_values("id") {
        let stored = nb.get_many(Kind::Port, &dedup(ids)).await?;
        return views.matching(q, stored).await;
    }
    let indexed = [PortField::DeviceId, PortField::NetworkId]
        .into_iter()
        .find_map(|f| q.filter_values(f.name()).map(|values| (f, dedup(values))));
    let single = match &indexed {
        None => Some(PortSource::All),
        Some((field, values)) if values.len() == 1 => Some(PortSource::By(*field, &values[0])),
        Some(_) => None,
    };
    match (q.id_page(), single) {
        // A page in id order from one range of keys: read it in chunks.
        (Some(page), Some(source)) => {
            let want = page.limit.saturating_add(1);
            let mut chunk = want.min(MAX_CHUNK);
            let mut marker = page.marker.map(str::to_owned);
            let mut out: Vec<Map<String, Value>> = Vec::new();
            loop {
                let read = nb.port_page(source, marker.as_deref(), chunk, page.reverse).await?;
                let found = views.matching(q, read.ports).await?;
                if page.reverse {
                    out.splice(0..0, found);
                } else {
                    out.extend(found);
                }
                let next = if page.reverse { read.ids.first() } else { read.ids.last() };
                match next {
                    Some(id) if out.len() < want && read.ids.len() == chunk => marker = Some(id.clone()),
                    _ => break,
                }
                chunk = (chunk * 2).min(MAX_CHUNK);
            }
            if page.reverse {
                out.drain(..out.len().saturating_sub(want));
            } else {
                out.truncate(want);
            }
            Ok(out)
        }
        _ => match indexed {
            Some((field, values)) => {
                let mut out = Vec::new();
                for value in &values {
                    out.extend(views.matching(q, nb.ports_by(field, value).await?).await?);
                }
                Ok(out)
            }
            None => {
                let (stored, _) = nb.list(Kind::Port).await?;
                views.matching(q, stored).await
            }
        },
    }
}

/// The ports of a device (from the index once it is built, by scanning before), in id order.
pub(crate) async fn device_ports(ctx: &Ctx, device_id: &str) -> ApiResult<Vec<Port>> {
    let stored = if ctx.nb.port_index_ready().await? {
        ctx.nb.ports_by(PortField::DeviceId, device_id).await?
    } else {
        ctx.nb.list(Kind::Port).await?.0
    };
    Ok(stored
        .into_iter()
        .filter_map(|s| Port::from_object(s.object))
        .filter(|p| p.device_id == device_id)
        .collect())
}

/// The values of a filter, each once, sorted.
fn dedup(values: &[String]) -> Vec<String> {
    let mut v = values.to_vec();
    v.sort();
    v.dedup();
    v
}
