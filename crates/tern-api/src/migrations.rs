//! `/v2.0/migrations` (read-only, a tern extension): the live migrations in flight, one record per
//! port (`tern_model::Migration`: source, destination, state, epoch, what activated it and the time
//! of each phase). Records are written by the controllers and by the binding calls; they go once
//! the migration completed or aborted, so an empty list means nothing is moving.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tern_model::Migration;

use crate::error::ApiResult;
use crate::input::{PathParam, QueryPairs};
use crate::util::{json_map, list_answer, show_answer, Ctx, State};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new().route("/v2.0/migrations", get(list_migrations)).route("/v2.0/migrations/{id}", get(show))
}

async fn list_migrations(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let known = json_map(&Migration::new("p", 1, "a", "b"));
    list_answer(&ctx.nb, q, &headers, ("migrations", "/v2.0/migrations"), json_map::<Migration>, known).await
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    show_answer::<Migration>(&ctx.nb, &id, q, "migration", json_map).await
}
