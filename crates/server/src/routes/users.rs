//! `/user_management/users` and the user's authentication factors.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use tessera_core::id;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiKey, JsonBody, ListQuery};
use crate::openapi::{ErrorBody, NotFoundBody, UnauthorizedBody, ValidationErrorBody};
use crate::routes::docs::{FactorListQuery, UserListQuery};
use crate::services::factors::{self, EnrollUserFactorRequest};
use crate::services::users::{self, CreateUserRequest, UpdateUserRequest};
use crate::views::{EnrolledFactorView, FactorList, FactorView, ListView, UserList, UserView};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(read_by_external_id))
        .routes(routes!(list_factors, enroll_factor))
}

/// Create a user.
#[utoipa::path(post, path = "/user_management/users", tag = "users", request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, description = "Malformed JSON, duplicate email or external id, weak password", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationErrorBody),
    ))]
async fn create(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let u = users::create(&state, req).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))))
}

/// Get a user.
#[utoipa::path(get, path = "/user_management/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id (`user_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
    ))]
async fn read(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&users::get(&state, &id).await?)))
}

/// Get a user by the `external_id` your application gave it.
#[utoipa::path(get, path = "/user_management/users/external_id/{external_id}", tag = "users",
    params(("external_id" = String, Path, description = "The user's external id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No user has that external id", body = NotFoundBody),
    ))]
async fn read_by_external_id(
    _: ApiKey,
    State(state): State<AppState>,
    Path(external_id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(
        &users::get_by_external_id(&state, &external_id).await?,
    )))
}

/// Update a user; omitted fields are unchanged.
#[utoipa::path(put, path = "/user_management/users/{id}", tag = "users", request_body = UpdateUserRequest,
    params(("id" = String, Path, description = "User id (`user_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Malformed JSON, duplicate email or external id, weak password", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationErrorBody),
    ))]
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

/// Delete a user with their factors; 200 with an empty body, as WorkOS answers.
#[utoipa::path(delete, path = "/user_management/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id (`user_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
    ))]
async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    users::delete(&state, &id).await?;
    Ok(StatusCode::OK)
}

/// List users, newest first by default.
#[utoipa::path(get, path = "/user_management/users", tag = "users", params(UserListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = ListView<UserView>),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 422, description = "Invalid query parameters", body = ValidationErrorBody),
    ))]
async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<UserList>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::USER)?;
    let org = q.get("organization_id").or_else(|| q.get("organization"));
    let page = users::list(&state, q.get("email"), org, &q.params).await?;
    Ok(Json(UserList::from_page(page, |u| UserView::from(u))))
}

/// Enrol the user in a TOTP factor; answers the factor (with its secret, URI and QR code,
/// shown only here) and a first challenge.
#[utoipa::path(post, path = "/user_management/users/{id}/auth_factors", tag = "user factors", request_body = EnrollUserFactorRequest,
    params(("id" = String, Path, description = "User id (`user_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The factor and its first challenge", body = EnrolledFactorView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationErrorBody),
    ))]
async fn enroll_factor(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EnrollUserFactorRequest>,
) -> ApiResult<(StatusCode, Json<EnrolledFactorView>)> {
    let v = factors::enroll_user_factor(&state, &id, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// List the user's factors (never with secrets).
#[utoipa::path(get, path = "/user_management/users/{id}/auth_factors", tag = "user factors", params(("id" = String, Path, description = "User id (`user_...`)"), FactorListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of factors", body = ListView<FactorView>),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
        (status = 422, description = "Invalid query parameters", body = ValidationErrorBody),
    ))]
async fn list_factors(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<FactorList>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::FACTOR)?;
    let page = factors::list_user_factors(&state, &id, &q.params).await?;
    Ok(Json(FactorList::from_page(page, |f| {
        FactorView::new(f, None)
    })))
}
