//! `/user_management/users`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_created_user_carries_every_key_of_the_reference_and_no_password,
    users_can_be_read_updated_and_deleted,
    a_duplicate_email_is_refused_whatever_its_case,
    invalid_fields_get_422_naming_each_field,
    weak_passwords_are_refused_and_passwords_are_stored_as_argon2id,
    users_list_pages_with_null_cursors_at_the_ends_and_filters_by_email,
    list_parameters_are_validated,
    metadata_merges_on_update_and_null_deletes_a_key,
);

const USER_KEYS: [&str; 14] = [
    "object",
    "id",
    "email",
    "email_verified",
    "first_name",
    "last_name",
    "name",
    "profile_picture_url",
    "external_id",
    "metadata",
    "locale",
    "last_sign_in_at",
    "created_at",
    "updated_at",
];

async fn a_created_user_carries_every_key_of_the_reference_and_no_password(app: TestApp) {
    let (s, u) = app
        .post("/user_management/users", json!({ "email": "Alan.Turing@Example.com", "password": "correct horse battery", "first_name": "Alan", "last_name": "Turing" }))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let obj = u.as_object().unwrap();
    for k in USER_KEYS {
        assert!(obj.contains_key(k), "missing {k}");
    }
    assert_eq!(
        obj.len(),
        USER_KEYS.len(),
        "no extra keys (no password!): {u}"
    );
    assert_eq!(u["object"], "user");
    assert!(u["id"].as_str().unwrap().starts_with("user_"));
    assert_eq!(u["email"], "alan.turing@example.com");
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["external_id"], Value::Null);
    assert_eq!(u["last_sign_in_at"], Value::Null);
    assert_eq!(
        u["created_at"], "2026-11-29T12:00:00.000Z",
        "from the injected clock, 3 fractional digits"
    );
}

async fn users_can_be_read_updated_and_deleted(app: TestApp) {
    let u = app.create_user("grace@example.com").await;
    let id = u["id"].as_str().unwrap();
    let (s, got) = app.get(&format!("/user_management/users/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, u);

    app.clock.advance_millis(1_234);
    let (s, upd) = app
        .put(&format!("/user_management/users/{id}"), json!({ "first_name": "Grace", "external_id": "ext-1", "email_verified": true, "locale": "en-GB" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["first_name"], "Grace");
    assert_eq!(upd["external_id"], "ext-1");
    assert_eq!(upd["email_verified"], true);
    assert_eq!(upd["updated_at"], "2026-11-29T12:00:01.234Z");
    assert_eq!(upd["created_at"], u["created_at"]);

    // null clears the documented-nullable fields and leaves the others alone.
    let (_, upd) = app
        .put(
            &format!("/user_management/users/{id}"),
            json!({ "external_id": null, "first_name": null }),
        )
        .await;
    assert_eq!(upd["external_id"], Value::Null);
    assert_eq!(upd["first_name"], "Grace");

    let r = app
        .http
        .delete(app.url(&format!("/user_management/users/{id}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().await.unwrap(),
        "",
        "WorkOS answers delete with an empty body"
    );

    let (s, v) = app.get(&format!("/user_management/users/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!({ "code": "entity_not_found", "entity_id": id, "message": format!("User not found: '{id}'.") })
    );
    let (s, _) = app.delete(&format!("/user_management/users/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .put(
            &format!("/user_management/users/{id}"),
            json!({ "first_name": "x" }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn a_duplicate_email_is_refused_whatever_its_case(app: TestApp) {
    app.create_user("dup@example.com").await;
    let (s, v) = app
        .post(
            "/user_management/users",
            json!({ "email": "DUP@example.com" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "email_not_available");
    let other = app.create_user("other@example.com").await;
    let (s, v) = app
        .put(
            &format!("/user_management/users/{}", other["id"].as_str().unwrap()),
            json!({ "email": "dup@example.com" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "email_not_available");
    // external ids are unique too
    let (s, _) = app
        .post(
            "/user_management/users",
            json!({ "email": "x1@example.com", "external_id": "e1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = app
        .post(
            "/user_management/users",
            json!({ "email": "x2@example.com", "external_id": "e1" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "external_id_already_used");
    let (_, list) = app.get("/user_management/users?limit=100").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        3,
        "failed creates wrote nothing"
    );
}

async fn invalid_fields_get_422_naming_each_field(app: TestApp) {
    let (s, v) = app.post("/user_management/users", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "invalid_request_parameters");
    assert_eq!(v["message"], "Validation failed");
    assert_eq!(v["errors"][0]["field"], "email");
    assert_eq!(v["errors"][0]["code"], "email_string_required");

    let long = "x".repeat(300);
    let (s, v) = app
        .post("/user_management/users", json!({ "email": "not-an-email", "first_name": long, "last_name": long, "metadata": { "k": 5 } }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "first_name", "last_name", "metadata"]);
    for e in v["errors"].as_array().unwrap() {
        assert!(e["message"].as_str().unwrap().len() > 5);
    }
}

async fn weak_passwords_are_refused_and_passwords_are_stored_as_argon2id(app: TestApp) {
    let (s, v) = app
        .post(
            "/user_management/users",
            json!({ "email": "weak@example.com", "password": "short" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "password_strength_error");
    assert_eq!(v["errors"][0]["field"], "password");
    let u = app.create_user("strong@example.com").await;
    let row = app
        .state
        .store
        .get_user(u["id"].as_str().unwrap())
        .await
        .unwrap();
    let phc = row.password_hash.unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains("correct horse battery"));
    assert!(tessera_core::password::verify(
        "correct horse battery",
        Some(&phc)
    ));

    let (s, v) = app.post("/user_management/users", json!({ "email": "both@example.com", "password": "correct horse battery", "password_hash": phc, "password_hash_type": "argon2" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = app.post("/user_management/users", json!({ "email": "imported@example.com", "password_hash": phc, "password_hash_type": "argon2" })).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = app.post("/user_management/users", json!({ "email": "bcrypt@example.com", "password_hash": "$2b$10$abc", "password_hash_type": "bcrypt" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "password_hash_type");
}

async fn users_list_pages_with_null_cursors_at_the_ends_and_filters_by_email(app: TestApp) {
    let mut ids = vec![];
    for i in 0..7 {
        app.clock.advance_millis(1);
        ids.push(
            app.create_user(&format!("u{i}@example.com")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (_, p1) = app.get("/user_management/users?limit=3").await;
    assert_eq!(p1["object"], "list");
    let got: Vec<&str> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [ids[6].as_str(), &ids[5], &ids[4]],
        "newest first by default"
    );
    assert_eq!(p1["list_metadata"]["before"], Value::Null);
    assert_eq!(p1["list_metadata"]["after"], ids[4].as_str());

    let mut seen: Vec<String> = vec![];
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/user_management/users?limit=3&order=desc&after={a}"),
            None => "/user_management/users?limit=3&order=desc".into(),
        };
        let (_, p) = app.get(&q).await;
        seen.extend(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match p["list_metadata"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => {
                assert_eq!(
                    p["list_metadata"]["after"],
                    Value::Null,
                    "JSON null, never \"\""
                );
                break;
            }
        }
    }
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(seen, want);

    let (_, asc) = app.get("/user_management/users?order=asc&limit=2").await;
    assert_eq!(asc["data"][0]["id"], ids[0].as_str());

    let (_, f) = app
        .get("/user_management/users?email=U3%40Example.com")
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 1);
    assert_eq!(f["data"][0]["id"], ids[3].as_str());
    let (_, none) = app
        .get("/user_management/users?organization_id=org_01H0000000000000000000000")
        .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
}

async fn list_parameters_are_validated(app: TestApp) {
    for q in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "order=sideways",
        "after=auth_factor_01H0000000000000000000000",
    ] {
        let (s, v) = app.get(&format!("/user_management/users?{q}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(v["code"], "invalid_request_parameters");
        let field = q.split('=').next().unwrap();
        assert_eq!(v["errors"][0]["field"], field);
    }
}

async fn metadata_merges_on_update_and_null_deletes_a_key(app: TestApp) {
    let (_, u) = app
        .post(
            "/user_management/users",
            json!({ "email": "meta@example.com", "metadata": { "a": "1", "b": "2" } }),
        )
        .await;
    let id = u["id"].as_str().unwrap();
    let (s, u) = app
        .put(
            &format!("/user_management/users/{id}"),
            json!({ "metadata": { "b": null, "c": "3" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["metadata"], json!({ "a": "1", "c": "3" }));
    let too_many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (s, v) = app
        .put(
            &format!("/user_management/users/{id}"),
            json!({ "metadata": too_many }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "metadata");
}
