//! `/user_management/users` and the user's authentication factors.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tessera_core::id;

use crate::error::ApiResult;
use crate::extract::{ApiKey, JsonBody, ListQuery};
use crate::services::factors::{self, EnrollUserFactorRequest};
use crate::services::users::{self, CreateUserRequest, UpdateUserRequest};
use crate::views::{EnrolledFactorView, FactorView, ListView, UserView};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/user_management/users", get(list).post(create))
        .route(
            "/user_management/users/{id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/user_management/users/{id}/auth_factors",
            get(list_factors).post(enroll_factor),
        )
}

async fn create(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let u = users::create(&state, req).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))))
}

async fn read(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&users::get(&state, &id).await?)))
}

async fn update(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(
        &users::update(&state, &id, req).await?,
    )))
}

/// WorkOS answers a user deletion with 200 and an empty body (recorded).
async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    users::delete(&state, &id).await?;
    Ok(StatusCode::OK)
}

async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<ListView<UserView>>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::USER)?;
    let org = q.get("organization_id").or_else(|| q.get("organization"));
    let page = users::list(&state, q.get("email"), org, &q.params).await?;
    Ok(Json(ListView::from_page(page, |u| UserView::from(u))))
}

async fn enroll_factor(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EnrollUserFactorRequest>,
) -> ApiResult<(StatusCode, Json<EnrolledFactorView>)> {
    let v = factors::enroll_user_factor(&state, &id, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list_factors(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<ListView<FactorView>>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::FACTOR)?;
    let page = factors::list_user_factors(&state, &id, &q.params).await?;
    Ok(Json(ListView::from_page(page, |f| {
        FactorView::new(f, None)
    })))
}
