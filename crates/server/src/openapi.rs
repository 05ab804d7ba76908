//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the request/response types, so it cannot drift from the code. Every route is registered
//! through `utoipa_axum::routes!`, which adds it to the router and to this document at once
//! (a test fails if a module registers a route any other way).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Self-hosted MFA and user sign-in, compatible with the WorkOS MFA and User Management API.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, UnauthorizedBody, NotFoundBody, ValidationErrorBody, FieldErrorBody, AuthErrorBody, crate::routes::docs::OrderParam))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_...")
                    .description(Some(
                        "An API key (`sk_...`), created with `tessera api-keys create`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// WorkOS "code style" error: `{code, message}`, sometimes with `errors[]`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub errors: Option<Vec<FieldErrorBody>>,
}

/// 401: exactly `{"message": "Unauthorized"}`, as WorkOS answers.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UnauthorizedBody {
    pub message: String,
}

/// 404 `entity_not_found`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NotFoundBody {
    pub code: String,
    pub message: String,
    pub entity_id: String,
}

/// 422 `invalid_request_parameters`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ValidationErrorBody {
    pub code: String,
    pub message: String,
    pub errors: Vec<FieldErrorBody>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorBody {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// Errors of `/user_management/authenticate`: OAuth style (`error`, `error_description`) for
/// client and grant problems, code style (`code`, `message`) for credential problems.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuthErrorBody {
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The serialised document, built once.
pub fn json(api: &utoipa::openapi::OpenApi) -> String {
    api.to_json().unwrap_or_else(|_| "{}".to_owned())
}
