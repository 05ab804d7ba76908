//! The requests the Go, Ruby, PHP and Java SDKs put on the wire, byte for byte, and what each
//! needs back. The versions modelled are the last releases with the seed's method names:
//! workos-go v6.5.0 (`pkg/mfa`, `pkg/usermanagement`), workos-ruby 6.2.0, workos-php 4.32.0
//! and workos-java (workos-kotlin) 4.25.0; what they send is listed in the reference
//! (`workos-api.md` §6b). Python and Node are driven for real by `sdk.rs`; these four have no
//! runtime here, so their requests are replayed over HTTP exactly as their sources build them.

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    go_challenges_every_factor_type_with_an_empty_sms_template,
    go_verify_errors_all_carry_a_code_and_successes_never_do,
    go_signs_in_without_an_authorization_header_and_lists_with_limit_and_order,
    ruby_sends_empty_queries_and_nulls_and_gets_json_for_every_error,
    php_sends_nulls_for_every_unset_field_and_reads_both_cursor_keys,
    java_reads_the_enrolment_from_factor_and_challenge_and_needs_every_non_null_field,
);

/// One request as an SDK builds it: the path with its query exactly as sent, the API key in
/// `Authorization` only when the SDK sends it, `Content-Type: application/json` only when the
/// SDK sets it, and the body text (not re-serialised).
async fn wire(
    app: &TestApp,
    method: Method,
    path_and_query: &str,
    bearer: bool,
    json_content_type: bool,
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut rb = app.http.request(method, app.url(path_and_query));
    if bearer {
        rb = rb.bearer_auth(&app.key);
    }
    if json_content_type {
        rb = rb.header(CONTENT_TYPE, "application/json");
    }
    if let Some(b) = body {
        rb = rb.body(b.to_owned());
    }
    let resp = rb.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"))
    };
    (status, headers, v)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Go v6 `mfa.EnrollFactor`: every key of its `map[string]string`, unset ones as `""`.
async fn go_enroll(app: &TestApp, kind: &str, issuer: &str, user: &str, phone: &str) -> Value {
    let body =
        json!({ "type": kind, "totp_issuer": issuer, "totp_user": user, "phone_number": phone })
            .to_string();
    let (s, _, f) = wire(
        app,
        Method::POST,
        "/auth/factors/enroll",
        true,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{kind}: {f}");
    f
}

/// Go v6 `mfa.ChallengeFactor`: always `{"sms_template": <opts.SMSTemplate>}`, `""` if unset.
async fn go_challenge(app: &TestApp, factor_id: &str, template: &str) -> (StatusCode, Value) {
    let body = json!({ "sms_template": template }).to_string();
    let (s, _, v) = wire(
        app,
        Method::POST,
        &format!("/auth/factors/{factor_id}/challenge"),
        true,
        true,
        Some(&body),
    )
    .await;
    (s, v)
}

async fn go_challenges_every_factor_type_with_an_empty_sms_template(app: TestApp) {
    let totp = go_enroll(&app, "totp", "Foo Corp", "alan@example.com", "").await;
    assert_eq!(totp["type"], "totp");
    let (s, c) = go_challenge(&app, totp["id"].as_str().unwrap(), "").await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "an empty template is no template: {c}"
    );
    assert_eq!(c["authentication_factor_id"], totp["id"]);
    assert!(c["expires_at"].is_string(), "{c}");
    let secret = totp["totp"]["secret"].as_str().unwrap();
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(secret, 0))
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");

    // SMS: Go sends empty TOTP fields with it, and an empty template means the default text.
    let sms = go_enroll(&app, "sms", "", "", "+16073517112").await;
    assert_eq!(sms["sms"]["phone_number"], "+16073517112", "{sms}");
    let sms_id = sms["id"].as_str().unwrap();
    let (s, c) = go_challenge(&app, sms_id, "").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert!(c.get("code").is_none(), "SMS codes are never returned: {c}");
    // A template that is there but lacks the placeholder is still refused for SMS.
    let (s, v) = go_challenge(&app, sms_id, "Your code").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "sms_template");
    let (s, c) = go_challenge(&app, sms_id, "Foo Corp: {{code}}").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");

    // Generic OTP (the PHP and Ruby SDKs can enrol it; Go's enrol refuses the type, but its
    // challenge call works on any factor).
    let (s, otp) = app
        .post("/auth/factors/enroll", json!({ "type": "generic_otp" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{otp}");
    let (s, c) = go_challenge(&app, otp["id"].as_str().unwrap(), "").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["code"].as_str().map(str::len), Some(6), "{c}");
}

/// Go v6 `mfa.VerifyChallenge` decodes every answer, whatever its status, and reports an
/// error only when the body has a non-empty `code`.
async fn go_verify(app: &TestApp, challenge_id: &str, code: &str) -> (StatusCode, Value) {
    let body = json!({ "code": code }).to_string();
    let (s, _, v) = wire(
        app,
        Method::POST,
        &format!("/auth/challenges/{challenge_id}/verify"),
        true,
        true,
        Some(&body),
    )
    .await;
    (s, v)
}

async fn go_verify_errors_all_carry_a_code_and_successes_never_do(app: TestApp) {
    let f = go_enroll(&app, "totp", "Foo Corp", "go@example.com", "").await;
    let (fid, secret) = (
        f["id"].as_str().unwrap(),
        f["totp"]["secret"].as_str().unwrap(),
    );
    let (_, c) = go_challenge(&app, fid, "").await;
    let cid = c["id"].as_str().unwrap();

    let (s, v) = go_verify(&app, cid, "000000").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["valid"], false);
    assert!(
        v.get("code").is_none(),
        "a wrong code is no error for Go: {v}"
    );

    let (s, v) = go_verify(&app, cid, &app.totp_code(secret, 0)).await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)));
    assert!(
        v.get("code").is_none(),
        "Go would read `code` as an error: {v}"
    );

    // Already verified, unknown, expired, out of attempts: Go sees them only through `code`.
    let (s, v) = go_verify(&app, cid, &app.totp_code(secret, 0)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "authentication_challenge_previously_verified");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));

    let (s, v) = go_verify(&app, "auth_challenge_01HZZZZZZZZZZZZZZZZZZZZZZZ", "123456").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "entity_not_found", "{v}");

    let (_, c) = go_challenge(&app, fid, "").await;
    app.clock
        .advance_millis(app.state.config.challenge_ttl_ms + 1);
    let (s, v) = go_verify(&app, c["id"].as_str().unwrap(), "123456").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "authentication_challenge_expired", "{v}");

    let (_, c) = go_challenge(&app, fid, "").await;
    let cid = c["id"].as_str().unwrap();
    for _ in 0..5 {
        go_verify(&app, cid, "000000").await;
    }
    let (s, v) = go_verify(&app, cid, "000000").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "one_time_code_too_many_attempts", "{v}");

    // A body Go cannot parse as a verify answer still has to be JSON with a code.
    let (s, v) = go_verify(&app, cid, "").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "invalid_request_parameters", "{v}");
}

async fn go_signs_in_without_an_authorization_header_and_lists_with_limit_and_order(app: TestApp) {
    let user = app.create_user("gopher@example.com").await;
    // `AuthenticateWithPassword`: the opts struct (`ip_address`/`user_agent` omitempty), then
    // `client_secret` and `grant_type`; no Authorization header.
    let body = format!(
        r#"{{"client_id":"{}","email":"gopher@example.com","password":"correct horse battery","client_secret":"{}","grant_type":"password"}}"#,
        app.client_id, app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], user["id"]);
    assert!(v["access_token"].is_string() && v["refresh_token"].is_string());

    // With a TOTP factor: Go makes `MFAChallengeError` only from a JSON body with
    // `code: "mfa_challenge"` and a `user` object.
    let uid = user["id"].as_str().unwrap();
    let enrolled = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let secret = enrolled["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, h, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(is_json(&h), "Go parses flow errors only from JSON: {h:?}");
    assert_eq!(v["code"], "mfa_challenge");
    assert_eq!(v["user"]["id"], user["id"]);
    let factor = v["authentication_factors"][0]["id"].as_str().unwrap();
    let token = v["pending_authentication_token"].as_str().unwrap();
    let (_, c) = go_challenge(&app, factor, "").await;
    // `AuthenticateWithTOTP`: client_id, code, pending token, challenge id, secret, grant.
    let totp_body = format!(
        r#"{{"client_id":"{}","code":"{}","pending_authentication_token":"{token}","authentication_challenge_id":"{}","client_secret":"{}","grant_type":"urn:workos:oauth:grant-type:mfa-totp"}}"#,
        app.client_id,
        app.totp_code(&secret, 0),
        c["id"].as_str().unwrap(),
        app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&totp_body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], user["id"]);

    // `ListUsers` always sends `limit` (10 by default) and `order=desc`, with a GET body-less
    // request that still says `Content-Type: application/json`.
    for i in 0..10 {
        app.create_user(&format!("g{i}@example.com")).await;
    }
    let (s, _, v) = wire(
        &app,
        Method::GET,
        "/user_management/users?limit=10&order=desc",
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 10);
    let after = v["list_metadata"]["after"].as_str().unwrap();
    let (s, _, v) = wire(
        &app,
        Method::GET,
        &format!("/user_management/users?after={after}&limit=10&order=desc"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    // Go's iterator stops only on JSON null; an empty string would loop forever.
    assert_eq!(v["list_metadata"]["after"], Value::Null, "{v}");
}

async fn ruby_sends_empty_queries_and_nulls_and_gets_json_for_every_error(app: TestApp) {
    let user = app.create_user("ruby@example.com").await;
    let uid = user["id"].as_str().unwrap();
    // `get_request`/`delete_request` set `uri.query = URI.encode_www_form({})`: a trailing `?`.
    let (s, _, v) = wire(
        &app,
        Method::GET,
        &format!("/user_management/users/{uid}?"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], user["id"]);

    // `enroll_factor` sends every keyword, unset ones as null; `challenge_factor` too.
    let body = r#"{"type":"totp","totp_issuer":"Foo Corp","totp_user":"ruby@example.com","phone_number":null}"#;
    let (s, _, f) = wire(
        &app,
        Method::POST,
        "/auth/factors/enroll",
        true,
        true,
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let fid = f["id"].as_str().unwrap();
    let (s, _, c) = wire(
        &app,
        Method::POST,
        &format!("/auth/factors/{fid}/challenge"),
        true,
        true,
        Some(r#"{"sms_template":null}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, _, g) = wire(
        &app,
        Method::GET,
        &format!("/auth/factors/{fid}?"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!((s, &g["id"]), (StatusCode::OK, &f["id"]), "{g}");

    // `list_auth_factors` (trailing `?`) and `list_users` (`order=desc` only).
    let (_, _, enrolled) = wire(
        &app,
        Method::POST,
        &format!("/user_management/users/{uid}/auth_factors"),
        true,
        true,
        Some(r#"{"type":"totp","totp_issuer":"Foo Corp"}"#),
    )
    .await;
    let secret = enrolled["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, v) = wire(
        &app,
        Method::GET,
        &format!("/user_management/users/{uid}/auth_factors?"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (s, _, v) = wire(
        &app,
        Method::GET,
        "/user_management/users?order=desc",
        true,
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["data"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );

    // `authenticate_with_password`: no Authorization header, and nulls for `ip_address`,
    // `user_agent` and `invitation_token`.
    let body = format!(
        r#"{{"client_id":"{}","client_secret":"{}","email":"ruby@example.com","password":"correct horse battery","ip_address":null,"user_agent":null,"invitation_token":null,"grant_type":"password"}}"#,
        app.client_id, app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "mfa_challenge");
    let token = v["pending_authentication_token"].as_str().unwrap();
    let factor = v["authentication_factors"][0]["id"].as_str().unwrap();
    let (_, _, c) = wire(
        &app,
        Method::POST,
        &format!("/auth/factors/{factor}/challenge"),
        true,
        true,
        Some(r#"{"sms_template":null}"#),
    )
    .await;
    let body = format!(
        r#"{{"code":"{}","client_id":"{}","client_secret":"{}","pending_authentication_token":"{token}","grant_type":"urn:workos:oauth:grant-type:mfa-totp","authentication_challenge_id":"{}","ip_address":null,"user_agent":null}}"#,
        app.totp_code(&secret, 0),
        app.client_id,
        app.key,
        c["id"].as_str().unwrap()
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let refresh = v["refresh_token"].as_str().unwrap();
    let body = format!(
        r#"{{"refresh_token":"{refresh}","client_id":"{}","client_secret":"{}","ip_address":null,"user_agent":null,"grant_type":"refresh_token","organization_id":null}}"#,
        app.client_id, app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        false,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Ruby `JSON.parse`s every error body: 400, 401, 403, 404 (also of unknown paths), 422.
    let cases: [(Method, String, bool, Option<&str>, StatusCode); 5] = [
        (
            Method::GET,
            "/user_management/users/user_01HZZZZZZZZZZZZZZZZZZZZZZZ?".into(),
            true,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/user_management/no_such_thing?".into(),
            true,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/user_management/users/{uid}?"),
            false,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/user_management/users".into(),
            true,
            Some(r#"{"email":"","password":null}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/user_management/authenticate".into(),
            false,
            Some(
                r#"{"grant_type":"password","client_id":"client_x","client_secret":"sk_x","email":"a@b.c","password":"x","ip_address":null}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, bearer, body, want) in cases {
        let (s, h, v) = wire(&app, method, &path, bearer, true, body).await;
        assert_eq!(s, want, "{path}: {v}");
        assert!(is_json(&h) && v.is_object(), "{path}: {h:?} {v}");
        assert!(
            v["message"].is_string() || v["error"].is_string(),
            "{path}: {v}"
        );
        if s == StatusCode::UNPROCESSABLE_ENTITY {
            // Ruby appends `field: code` of each item to `message`.
            let e = &v["errors"][0];
            assert!(e["field"].is_string() && e["code"].is_string(), "{v}");
        }
    }

    // `delete_factor` and `delete_user`, again with the trailing `?`.
    let (s, _, _) = wire(
        &app,
        Method::DELETE,
        &format!("/auth/factors/{fid}?"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = wire(
        &app,
        Method::DELETE,
        &format!("/user_management/users/{uid}?"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get(&format!("/user_management/users/{uid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn php_sends_nulls_for_every_unset_field_and_reads_both_cursor_keys(app: TestApp) {
    // `createUser`: every parameter, unset ones as null (`json_encode` of the params array).
    let body = r#"{"email":"php@example.com","password":"correct horse battery","first_name":null,"last_name":null,"email_verified":null,"password_hash":null,"password_hash_type":null,"external_id":null,"metadata":null}"#;
    let (s, _, user) = wire(
        &app,
        Method::POST,
        "/user_management/users",
        true,
        true,
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["metadata"], json!({}));
    let uid = user["id"].as_str().unwrap();

    // `listUsers`: `http_build_query` drops the nulls, so only `limit=10`. PHP reads
    // `list_metadata.before` and `.after` as array keys: both must exist, null or not.
    for i in 0..10 {
        app.create_user(&format!("p{i}@example.com")).await;
    }
    let mut after: Option<String> = None;
    let mut seen = 0;
    for page in 0..3 {
        let path = match &after {
            None => "/user_management/users?limit=10".to_owned(),
            Some(a) => format!("/user_management/users?limit=10&after={a}"),
        };
        let (s, _, v) = wire(&app, Method::GET, &path, true, false, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let meta = v["list_metadata"].as_object().unwrap();
        assert!(
            meta.contains_key("before") && meta.contains_key("after"),
            "page {page}: {v}"
        );
        seen += v["data"].as_array().unwrap().len();
        after = meta["after"].as_str().map(str::to_owned);
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, 11);

    // `enrollAuthFactor`: `totp_user` and `totp_issuer` as null mean the defaults.
    let (s, _, enrolled) = wire(
        &app,
        Method::POST,
        &format!("/user_management/users/{uid}/auth_factors"),
        true,
        true,
        Some(r#"{"type":"totp","totp_user":null,"totp_issuer":null}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{enrolled}");
    let totp = &enrolled["authentication_factor"]["totp"];
    assert_eq!(totp["user"], "php@example.com");
    assert_eq!(totp["issuer"], "Tessera Test");
    let secret = totp["secret"].as_str().unwrap().to_owned();
    // `listAuthFactors`: a GET without a query and without Content-Type.
    let (s, _, v) = wire(
        &app,
        Method::GET,
        &format!("/user_management/users/{uid}/auth_factors"),
        true,
        false,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["totp"]["issuer"], "Tessera Test");

    // MFA `enrollFactor` and `challengeFactor` with nulls.
    let (s, _, f) = wire(
        &app,
        Method::POST,
        "/auth/factors/enroll",
        true,
        true,
        Some(r#"{"type":"sms","totp_issuer":null,"totp_user":null,"phone_number":"+16073517112"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, c) = wire(
        &app,
        Method::POST,
        &format!("/auth/factors/{}/challenge", f["id"].as_str().unwrap()),
        true,
        true,
        Some(r#"{"sms_template":null}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    // PHP picks the challenge class by the presence of `expires_at`.
    assert!(c["expires_at"].is_string());

    // `authenticateWithPassword` and `authenticateWithTotp`: the Authorization header AND
    // `client_secret`, nulls for `ip_address` and `user_agent`. PHP's `responseCode` is the
    // body's `code`.
    let body = format!(
        r#"{{"client_id":"{}","email":"php@example.com","password":"correct horse battery","ip_address":null,"user_agent":null,"grant_type":"password","client_secret":"{}"}}"#,
        app.client_id, app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        true,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "mfa_challenge");
    let token = v["pending_authentication_token"].as_str().unwrap();
    let body = format!(
        r#"{{"client_id":"{}","pending_authentication_token":"{token}","authentication_challenge_id":"{}","code":"{}","ip_address":null,"user_agent":null,"grant_type":"urn:workos:oauth:grant-type:mfa-totp","client_secret":"{}"}}"#,
        app.client_id,
        enrolled["authentication_challenge"]["id"].as_str().unwrap(),
        app.totp_code(&secret, 0),
        app.key
    );
    let (s, _, v) = wire(
        &app,
        Method::POST,
        "/user_management/authenticate",
        true,
        true,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], user["id"]);

    // `deleteUser`: a DELETE without Content-Type or body.
    let (s, _, _) = wire(
        &app,
        Method::DELETE,
        &format!("/user_management/users/{uid}"),
        true,
        false,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

/// Keys a Kotlin data class of workos-java 4.25.0 declares non-null: Jackson refuses the
/// answer when one is missing or null.
fn assert_non_null(v: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(
            v.get(k).is_some_and(|x| !x.is_null()),
            "{what} needs a non-null `{k}`: {v}"
        );
    }
}

async fn java_reads_the_enrolment_from_factor_and_challenge_and_needs_every_non_null_field(
    app: TestApp,
) {
    // `createUser` (nulls left out: `@JsonInclude(NON_NULL)`), Authorization on every call.
    let (s, _, user) = wire(
        &app,
        Method::POST,
        "/user_management/users",
        true,
        true,
        Some(r#"{"email":"java@example.com","password":"correct horse battery"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    assert_non_null(
        &user,
        &["id", "email", "email_verified", "created_at", "updated_at"],
        "User",
    );
    let uid = user["id"].as_str().unwrap();

    // `enrollAuthFactor(id)` with default options: `{"type":"totp"}`. Java 4.x reads the
    // answer from `factor` and `challenge`; the other SDKs from the long keys.
    let (s, _, v) = wire(
        &app,
        Method::POST,
        &format!("/user_management/users/{uid}/auth_factors"),
        true,
        true,
        Some(r#"{"type":"totp"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["factor"], v["authentication_factor"], "{v}");
    assert_eq!(v["challenge"], v["authentication_challenge"], "{v}");
    assert_non_null(
        &v["factor"],
        &["id", "created_at", "updated_at", "type", "totp"],
        "AuthenticationFactor",
    );
    assert_non_null(
        &v["factor"]["totp"],
        &["issuer", "user", "secret", "qr_code", "uri"],
        "AuthenticationTotp",
    );
    assert_non_null(
        &v["challenge"],
        &[
            "id",
            "created_at",
            "updated_at",
            "expires_at",
            "authentication_factor_id",
        ],
        "AuthenticationChallenge",
    );
    let fid = v["factor"]["id"].as_str().unwrap();

    // `listAuthFactors` and `listUsers()` (no query at all).
    let (s, _, v) = wire(
        &app,
        Method::GET,
        &format!("/user_management/users/{uid}/auth_factors"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_non_null(&v, &["data", "list_metadata"], "AuthenticationFactors");
    let (s, _, v) = wire(
        &app,
        Method::GET,
        "/user_management/users",
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_non_null(&v, &["data", "list_metadata"], "Users");

    // MFA `challengeFactor` without a template sends `{}`; its `Challenge` needs
    // `expires_at`, also for TOTP. `getFactor` needs `Totp.issuer` and `.user`.
    let (s, _, c) = wire(
        &app,
        Method::POST,
        &format!("/auth/factors/{fid}/challenge"),
        true,
        true,
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_non_null(
        &c,
        &[
            "id",
            "created_at",
            "updated_at",
            "expires_at",
            "authentication_factor_id",
        ],
        "Challenge",
    );
    let (s, _, f) = wire(
        &app,
        Method::GET,
        &format!("/auth/factors/{fid}"),
        true,
        true,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_non_null(&f, &["id", "created_at", "updated_at", "type"], "Factor");
    assert_non_null(&f["totp"], &["issuer", "user"], "Totp");

    // The OpenAPI document says the same: both spellings are required properties of the
    // enrolment answer, so schema checks of responses agree with what is sent.
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let required = doc["components"]["schemas"]["EnrolledFactorView"]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", doc["components"]["schemas"]["EnrolledFactorView"]));
    for k in [
        "authentication_factor",
        "authentication_challenge",
        "factor",
        "challenge",
    ] {
        assert!(
            required.contains(&json!(k)),
            "{k} missing from {required:?}"
        );
    }
}
