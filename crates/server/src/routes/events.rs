//! `GET /events`: the audit trail in the WorkOS Events API shape.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use tessera_core::{id, Error, FieldError, Timestamp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiKey, ListQuery};
use crate::openapi::{UnauthorizedBody, ValidationErrorBody};
use crate::routes::docs::EventListQuery;
use crate::services::events;
use crate::views::ListView;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub id: String,
    pub event: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

fn parse_time(field: &str, s: &str) -> Result<Timestamp, Error> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| Timestamp(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
        .map_err(|_| {
            Error::Validation(vec![FieldError::new(
                field,
                "invalid_timestamp",
                format!("{field} must be an ISO 8601 timestamp such as 2026-01-01T00:00:00.000Z."),
            )])
        })
}

/// `events` may repeat (`events=a&events=b`, Python) or be comma-joined (`events=a,b`, Node);
/// `events[]=a` is accepted too.
/// The audit trail: enrolments, challenges, verifications, sign-ins, deletions.
#[utoipa::path(get, path = "/events", tag = "events", params(EventListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = ListView<EventView>),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 422, description = "Invalid query parameters", body = ValidationErrorBody),
    ))]
async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<ListView<EventView>>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::EVENT)?;
    let names: Vec<String> = q
        .extra
        .iter()
        .filter(|(k, _)| k == "events" || k == "events[]")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() > 50 {
        return Err(Error::invalid("events", "too_many_events", "At most 50 event names.").into());
    }
    let start = q
        .get("range_start")
        .map(|s| parse_time("range_start", s))
        .transpose()?;
    let end = q
        .get("range_end")
        .map(|s| parse_time("range_end", s))
        .transpose()?;
    let page = events::list(&state, &names, start, end, &q.params).await?;
    Ok(Json(ListView::from_page(page, |e| EventView {
        object: "event",
        id: e.id.clone(),
        event: e.event.clone(),
        data: serde_json::from_str(&e.data).unwrap_or_default(),
        created_at: e.created_at,
    })))
}
