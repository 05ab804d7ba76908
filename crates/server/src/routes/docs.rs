//! Query-parameter types for the OpenAPI document only. The handlers parse the raw query
//! themselves (`ListQuery`) to answer bad values in the WorkOS error shape.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OrderParam {
    Asc,
    Desc,
    Normal,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserListQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// A user id: the page before it.
    pub before: Option<String>,
    /// A user id: the page after it.
    pub after: Option<String>,
    /// `desc` (default), `asc`, or `normal` (descending, `before` pages to older items).
    pub order: Option<OrderParam>,
    /// Only the user with this email.
    pub email: Option<String>,
    /// Tessera has no organizations: with this filter the list is empty.
    pub organization_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FactorListQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// A factor id: the page before it.
    pub before: Option<String>,
    /// A factor id: the page after it.
    pub after: Option<String>,
    pub order: Option<OrderParam>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventListQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// An event id: the page before it.
    pub before: Option<String>,
    /// An event id: the page after it.
    pub after: Option<String>,
    pub order: Option<OrderParam>,
    /// Event names; repeat the parameter or join names with commas.
    pub events: Option<Vec<String>>,
    /// Only events at or after this time (ISO 8601).
    pub range_start: Option<String>,
    /// Only events before this time (ISO 8601).
    pub range_end: Option<String>,
}

/// Pagination of `GET /user_management/users/:id/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// A session id: the page before it.
    pub before: Option<String>,
    /// A session id: the page after it.
    pub after: Option<String>,
    pub order: Option<OrderParam>,
}
