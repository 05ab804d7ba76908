//! The OpenAPI document: served without auth, complete, and in step with the router.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_auth_and_documents_every_operation() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut ops = vec![];
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            ops.push(format!("{} {path}", method.to_uppercase()));
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents its success"
            );
            if path != "/health"
                && !path.starts_with("/sso/")
                && path != "/user_management/authenticate"
            {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!([]),
                    "{method} {path} needs the key"
                );
            }
            // Every documented operation is really served: no route-level 404 or 405.
            let url = app.url(
                &path
                    .replace("{id}", "x_01")
                    .replace("{client_id}", "client_x"),
            );
            let resp = app
                .http
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&app.key)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(
                body["code"] != "not_found" && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is not served: {status} {body}"
            );
        }
    }
    ops.sort();
    let expected = [
        "DELETE /auth/factors/{id}",
        "DELETE /user_management/users/{id}",
        "GET /auth/factors/{id}",
        "GET /events",
        "GET /health",
        "GET /sso/jwks/{client_id}",
        "GET /user_management/users",
        "GET /user_management/users/external_id/{external_id}",
        "GET /user_management/users/{id}",
        "GET /user_management/users/{id}/auth_factors",
        "GET /user_management/users/{id}/sessions",
        "POST /auth/challenges/{id}/verify",
        "POST /auth/factors/enroll",
        "POST /auth/factors/{id}/challenge",
        "POST /user_management/authenticate",
        "POST /user_management/sessions/revoke",
        "POST /user_management/users",
        "POST /user_management/users/{id}/auth_factors",
        "PUT /user_management/users/{id}",
    ];
    assert_eq!(ops, expected);
}

/// Routes reach the router only through `utoipa_axum::routes!`, which documents them; a plain
/// axum `.route(` in a resource module would serve an undocumented endpoint.
#[test]
fn no_resource_module_registers_a_route_the_document_would_miss() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let plain_routes = text.matches(".route(").count();
        let allowed = if name == "mod.rs" { 1 } else { 0 }; // `/openapi.json` itself
        assert_eq!(
            plain_routes, allowed,
            "{name} registers {plain_routes} route(s) outside routes!()"
        );
    }
}
