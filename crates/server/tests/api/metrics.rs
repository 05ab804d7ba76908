//! Prometheus metrics on their own listener (`--metrics-listen`): scraped over HTTP, parsed,
//! and compared before and after known requests, so each counter must move by exactly the
//! expected amount. Every server has its own registry, so tests running side by side in this
//! binary cannot disturb each other's counts.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::Clock;
use tessera_server::config::SmsProvider;
use tessera_server::Config;

use crate::helpers::{config_for, Backend, TestApp, TestDb};

fn with_metrics(c: &mut Config) {
    c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
}

async fn spawn(backend: Backend, change: impl FnOnce(&mut Config)) -> Option<TestApp> {
    TestApp::spawn_configured(backend, |c| {
        with_metrics(c);
        change(c);
    })
    .await
}

/// One scrape: each sample by its name and sorted labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    async fn of(app: &TestApp) -> Scrape {
        let base = app.metrics_base.as_ref().expect("metrics are on");
        let r = app
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        Scrape::parse(&r.text().await.unwrap())
    }

    /// The metrics a server records (always, whether or not a listener serves them), read
    /// without HTTP, for tests of servers started without `metrics_listen`.
    pub(crate) fn of_state(state: &tessera_server::AppState) -> Scrape {
        Scrape::parse(&state.metrics.render(state.store.pool_stats()).unwrap())
    }

    /// Parses the text exposition format as far as these metrics use it (no timestamps; label
    /// values without `,`, `"` or `\`, which route templates and our label values never
    /// hold). Written here because the parsing crates for this format are little kept, and a
    /// test must not trust the encoder it checks.
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    let mut labels: Vec<(String, String)> = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .expect("quoted label value");
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    labels.sort();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            };
            assert!(
                samples.insert((name, labels), value).is_none(),
                "one sample per series: {line}"
            );
        }
        Scrape(samples)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.0.get(&(name.to_owned(), labels)).copied()
    }

    /// A counter's value (0 when the series has not appeared yet).
    pub(crate) fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every series of `name` whose value changed since `before`, with the change.
    fn changes(&self, before: &Scrape, name: &str) -> BTreeMap<Vec<(String, String)>, f64> {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .filter_map(|((_, labels), v)| {
                let was = before.0.get(&(name.to_owned(), labels.clone())).copied();
                let delta = v - was.unwrap_or(0.0);
                (delta != 0.0).then(|| (labels.clone(), delta))
            })
            .collect()
    }

    fn label_values(&self) -> Vec<String> {
        self.0
            .keys()
            .flat_map(|(_, labels)| labels.iter().map(|(_, v)| v.clone()))
            .collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn wrong_code(right: &str) -> String {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
    .to_owned()
}

// Without a metrics listener: the counts are read from the server's state (they are
// recorded either way), so these run on both backends through the shared macro.
crate::on_both_backends!(
    refused_verifications_are_counted_by_reason,
    sign_ins_are_counted_by_grant_and_outcome,
    parallel_verifications_of_one_code_are_counted_one_valid_and_the_rest_replayed,
);

const VERIFICATIONS: &str = "tessera_mfa_verifications_total";
const REQUESTS: &str = "tessera_http_requests_total";
const VERIFY_ROUTE: &str = "/auth/challenges/{id}/verify";

async fn verification_counts_and_route_templates_reach_the_metrics_listener_only(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let first = app.challenge(&fid).await;
    let second = app.challenge(&fid).await;
    let third = app.challenge(&fid).await;
    let (cid1, cid2, cid3) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
        third["id"].as_str().unwrap(),
    );
    let right = app.totp_code(&secret, 0);

    let before = Scrape::of(&app).await;
    // One each of valid, invalid and replayed: all three are 201 on the same route.
    let (s, v) = app.verify(cid1, &wrong_code(&right)).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(false)));
    let (s, v) = app.verify(cid2, &right).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(true)));
    let (s, v) = app.verify(cid3, &right).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(false)));
    // A matched route with an id in its path, and a path no route matches.
    let missing = "auth_factor_01JZZZZZZZZZZZZZZZZZZZZZZZ";
    let (s, _) = app.get(&format!("/auth/factors/{missing}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/no/such/route/xyz123").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The API's listener does not serve the metrics.
    let (s, _) = app.get("/metrics").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let after = Scrape::of(&app).await;

    let expected: BTreeMap<_, _> = [
        (labels(&[("result", "valid")]), 1.0),
        (labels(&[("result", "invalid")]), 1.0),
        (labels(&[("result", "replayed")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, VERIFICATIONS), expected);

    let expected: BTreeMap<_, _> = [
        (
            labels(&[
                ("method", "POST"),
                ("route", VERIFY_ROUTE),
                ("status", "201"),
            ]),
            3.0,
        ),
        (
            labels(&[
                ("method", "GET"),
                ("route", "/auth/factors/{id}"),
                ("status", "404"),
            ]),
            1.0,
        ),
        (
            labels(&[("method", "GET"), ("route", "unmatched"), ("status", "404")]),
            2.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, REQUESTS), expected);

    // Labels are templates: no id, and no made-up path, is ever a label value.
    for v in after.label_values() {
        assert!(
            !v.contains("auth_challenge_")
                && !v.contains("auth_factor_")
                && !v.contains("xyz123")
                && !v.contains("/metrics"),
            "label value {v}"
        );
    }

    // The duration histogram of the verify route saw the three requests, in order.
    let route = [("route", VERIFY_ROUTE)];
    let hist = "tessera_http_request_duration_seconds";
    let count = after.count(&format!("{hist}_count"), &route)
        - before.count(&format!("{hist}_count"), &route);
    assert_eq!(count, 3.0);
    let sum = after.count(&format!("{hist}_sum"), &route);
    assert!(sum > 0.0, "durations add up to something: {sum}");
    let mut previous = 0.0;
    for le in ["0.0005", "0.001", "0.01", "0.1", "1", "10", "+Inf"] {
        let b = after
            .get(
                &format!("{hist}_bucket"),
                &[("route", VERIFY_ROUTE), ("le", le)],
            )
            .unwrap_or_else(|| panic!("bucket le={le}"));
        assert!(b >= previous, "cumulative buckets");
        previous = b;
    }
    assert_eq!(
        previous,
        after.count(&format!("{hist}_count"), &route),
        "+Inf is the count"
    );

    assert_eq!(
        after.get(
            "tessera_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // Pool gauges of the backend in use.
    let idle = after.get("tessera_db_pool_connections", &[("state", "idle")]);
    let busy = after.get("tessera_db_pool_connections", &[("state", "in_use")]);
    assert!(
        idle.is_some() && busy.is_some(),
        "pool gauges: {idle:?} {busy:?}"
    );
    if app.db.is_postgres() {
        assert_eq!(
            after.get("tessera_db_pool_max_connections", &[]),
            Some(f64::from(app.state.config.max_connections))
        );
        // The requests above left open connections in the pool (sqlx keeps them).
        assert!(idle.unwrap() + busy.unwrap() >= 1.0);
        assert_eq!(after.get("tessera_db_writer_queue_depth", &[]), None);
    } else {
        // The requests' readers went back to the pool (the maintenance task may hold one).
        assert!(idle.unwrap() >= 1.0, "readers are kept idle: {idle:?}");
        assert_eq!(after.get("tessera_db_writer_queue_depth", &[]), Some(0.0));
        assert_eq!(after.get("tessera_db_pool_max_connections", &[]), None);
    }
}

mod verification_counts_and_route_templates_reach_the_metrics_listener_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = spawn(Backend::Sqlite, |_| {}).await.unwrap();
        super::verification_counts_and_route_templates_reach_the_metrics_listener_only(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        match spawn(Backend::Postgres, |_| {}).await {
            Some(app) => {
                super::verification_counts_and_route_templates_reach_the_metrics_listener_only(app)
                    .await
            }
            None => eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run"),
        }
    }
}

async fn refused_verifications_are_counted_by_reason(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let right = app.totp_code(&secret, 0);
    let wrong = wrong_code(&right);
    let before = Scrape::of_state(&app.state);

    // 5 wrong codes use up a challenge; a 6th is refused for its attempts.
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(app.verify(cid, &wrong).await.0, StatusCode::CREATED);
    }
    let (s, v) = app.verify(cid, &wrong).await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("one_time_code_too_many_attempts")
        )
    );
    // 5 more on a second challenge reach the factor's limit of 10 per 15 minutes.
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(app.verify(cid, &wrong).await.0, StatusCode::CREATED);
    }
    let c = app.challenge(&fid).await;
    let (s, _) = app.verify(c["id"].as_str().unwrap(), &right).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);

    // A second factor: verified once, then again; and a challenge left to expire.
    let (fid2, secret2) = app.totp_factor(None).await;
    let c = app.challenge(&fid2).await;
    let cid = c["id"].as_str().unwrap();
    let (s, v) = app.verify(cid, &app.totp_code(&secret2, 0)).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(true)));
    let (s, v) = app.verify(cid, &app.totp_code(&secret2, 0)).await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("authentication_challenge_previously_verified")
        )
    );
    let c = app.challenge(&fid2).await;
    app.clock
        .advance_millis(app.state.config.challenge_ttl_ms + 1);
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(&secret2, 0))
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("authentication_challenge_expired")
        )
    );
    // A challenge that does not exist is no verification.
    let (s, _) = app
        .verify("auth_challenge_01JZZZZZZZZZZZZZZZZZZZZZZZ", &right)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let after = Scrape::of_state(&app.state);
    let expected: BTreeMap<_, _> = [
        (labels(&[("result", "invalid")]), 10.0),
        (labels(&[("result", "too_many_attempts")]), 1.0),
        (labels(&[("result", "rate_limited")]), 1.0),
        (labels(&[("result", "valid")]), 1.0),
        (labels(&[("result", "already_verified")]), 1.0),
        (labels(&[("result", "expired")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, VERIFICATIONS), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_of_a_locked_factor_are_counted_as_locked() {
    let app = spawn(Backend::Sqlite, |c| c.factor_lockout_after = 1)
        .await
        .unwrap();
    let (fid, secret) = app.totp_factor(None).await;
    let right = app.totp_code(&secret, 0);
    let before = Scrape::of(&app).await;
    let c = app.challenge(&fid).await;
    // The wrong code that locks the factor is an invalid one; what follows is refused.
    let (s, _) = app
        .verify(c["id"].as_str().unwrap(), &wrong_code(&right))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = app.verify(c["id"].as_str().unwrap(), &right).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::FORBIDDEN, json!("authentication_factor_locked"))
    );
    let after = Scrape::of(&app).await;
    let expected: BTreeMap<_, _> = [
        (labels(&[("result", "invalid")]), 1.0),
        (labels(&[("result", "locked")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, VERIFICATIONS), expected);
}

async fn authenticate(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.authenticate(body).await
}

async fn sign_ins_are_counted_by_grant_and_outcome(app: TestApp) {
    app.create_user("plain@example.com").await;
    let u = app.create_user("mfa@example.com").await;
    let e = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let secret = e["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let fid = e["authentication_factor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let password =
        |email: &str, pw: &str| json!({ "grant_type": "password", "email": email, "password": pw });
    let before = Scrape::of_state(&app.state);

    let (s, _) = authenticate(&app, password("plain@example.com", "wrong password")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = authenticate(&app, password("plain@example.com", "correct horse battery")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let refresh_token = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = authenticate(
        &app,
        json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = authenticate(&app, password("mfa@example.com", "correct horse battery")).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::FORBIDDEN, json!("mfa_challenge"))
    );
    let pending = v["pending_authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = app.challenge(&fid).await;
    let (s, v) = authenticate(
        &app,
        json!({
            "grant_type": "urn:workos:oauth:grant-type:mfa-totp",
            "code": app.totp_code(&secret, 0),
            "pending_authentication_token": pending,
            "authentication_challenge_id": c["id"],
        }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An unsupported grant type is a malformed request, not a sign-in: no label for it.
    let (s, _) = authenticate(&app, json!({ "grant_type": "magic" })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let after = Scrape::of_state(&app.state);
    let expected: BTreeMap<_, _> = [
        (labels(&[("grant", "password"), ("result", "failed")]), 1.0),
        (labels(&[("grant", "password"), ("result", "success")]), 1.0),
        (
            labels(&[("grant", "password"), ("result", "mfa_required")]),
            1.0,
        ),
        (
            labels(&[("grant", "refresh_token"), ("result", "success")]),
            1.0,
        ),
        (labels(&[("grant", "mfa_totp"), ("result", "success")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, "tessera_sign_ins_total"), expected);
    // The code checked by the `mfa-totp` grant is a verification like any other.
    assert_eq!(
        after.count(VERIFICATIONS, &[("result", "valid")])
            - before.count(VERIFICATIONS, &[("result", "valid")]),
        1.0
    );
}

async fn sms_factor(app: &TestApp, phone: &str) -> String {
    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": phone }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    f["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_codes_are_counted_by_provider_and_outcome() {
    let app = spawn(Backend::Sqlite, |_| {}).await.unwrap();
    let fid = sms_factor(&app, "+15555550100").await;
    let before = Scrape::of(&app).await;
    // 5 messages per number per 10 minutes, then 429.
    for _ in 0..5 {
        app.challenge(&fid).await;
    }
    let (s, _) = app
        .post(&format!("/auth/factors/{fid}/challenge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let after = Scrape::of(&app).await;
    let expected: BTreeMap<_, _> = [
        (labels(&[("provider", "log"), ("result", "sent")]), 5.0),
        (
            labels(&[("provider", "log"), ("result", "rate_limited")]),
            1.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, "tessera_sms_sent_total"), expected);

    // A provider that cannot be reached: the delivery fails (502) and is counted so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let app = spawn(Backend::Sqlite, |c| {
        c.sms_provider = SmsProvider::Webhook {
            url: format!("http://{closed}/sms"),
            secret: zeroize::Zeroizing::new("whsec_test".into()),
        };
    })
    .await
    .unwrap();
    let fid = sms_factor(&app, "+15555550101").await;
    let (s, v) = app
        .post(&format!("/auth/factors/{fid}/challenge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    let scrape = Scrape::of(&app).await;
    assert_eq!(
        scrape.get(
            "tessera_sms_sent_total",
            &[("provider", "webhook"), ("result", "failed")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_and_never_on_the_api_address() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    assert!(app.metrics_base.is_none());
    let (s, _) = app.get("/metrics").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    for (api, metrics) in [
        ("127.0.0.1:18080", "127.0.0.1:18080"),
        ("127.0.0.1:18080", "0.0.0.0:18080"),
        ("0.0.0.0:18080", "127.0.0.1:18080"),
    ] {
        let mut c = config_for(&db);
        c.listen = api.parse().unwrap();
        c.metrics_listen = Some(metrics.parse().unwrap());
        let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(tessera_core::ManualClock::new(
            tessera_core::Timestamp(crate::helpers::T0),
        ));
        let err = match tessera_server::Application::build(c, clock).await {
            Ok(_) => panic!("--metrics-listen {metrics} beside --listen {api} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("--metrics-listen") && err.contains("must not be the API's address"),
            "{err}"
        );
    }
}

async fn parallel_verifications_of_one_code_are_counted_one_valid_and_the_rest_replayed(
    app: TestApp,
) {
    let (fid, secret) = app.totp_factor(None).await;
    let mut challenges = Vec::new();
    for _ in 0..20 {
        challenges.push(app.challenge(&fid).await["id"].as_str().unwrap().to_owned());
    }
    let code = app.totp_code(&secret, 0);
    let before = Scrape::of_state(&app.state);
    // Each request on its own task: the server handles them in parallel.
    let mut tasks = tokio::task::JoinSet::new();
    for cid in &challenges {
        let request = app
            .http
            .post(app.url(&format!("/auth/challenges/{cid}/verify")))
            .bearer_auth(&app.key)
            .json(&json!({ "code": code }));
        tasks.spawn(async move {
            let r = request.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let valid = answers
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == json!(true))
        .count();
    assert_eq!(valid, 1, "{answers:?}");
    let after = Scrape::of_state(&app.state);
    let expected: BTreeMap<_, _> = [
        (labels(&[("result", "valid")]), 1.0),
        (labels(&[("result", "replayed")]), 19.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(after.changes(&before, VERIFICATIONS), expected);
    assert_eq!(
        after.changes(&before, REQUESTS),
        [(
            labels(&[
                ("method", "POST"),
                ("route", VERIFY_ROUTE),
                ("status", "201")
            ]),
            20.0
        )]
        .into_iter()
        .collect()
    );
}
