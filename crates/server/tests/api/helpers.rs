//! `TestApp`: a real server on port 0 with a manual clock, plus typed helpers per endpoint.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::{ManualClock, Timestamp};
use tessera_server::{Application, Config};
use tessera_store::DatabaseUrl;

/// 2026-11-29T12:00:00.000Z, a fixed start for every test clock.
pub(crate) const T0: i64 = 1_795_953_600_000;

pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's database lives; dropped with the test (PostgreSQL databases are dropped).
pub(crate) struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_name.take() {
            pg::drop_database(admin_url, name);
        }
    }
}

/// PostgreSQL test databases: cloned from a migrated template (shared with the store suite).
#[path = "../../../store/tests/common/pg.rs"]
mod pg;

/// The PostgreSQL admin URL when PostgreSQL tests are configured (required when `CI` is set).
pub(crate) fn pg_admin_url() -> Option<String> {
    pg::admin_url()
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("tessera.db");
                Some(TestDb {
                    url: DatabaseUrl::parse(path.to_str().unwrap()).unwrap(),
                    _dir: Some(dir),
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin = pg_admin_url()?;
                let (url, name) = pg::create_database(&admin).await;
                Some(TestDb {
                    url,
                    _dir: None,
                    pg_name: Some((admin, name)),
                })
            }
        }
    }

    /// A PostgreSQL database without Tessera's tables (`None` without PostgreSQL).
    pub(crate) async fn empty_postgres() -> Option<TestDb> {
        let admin = pg_admin_url()?;
        let (url, name) = pg::create_empty_database(&admin).await;
        Some(TestDb {
            url,
            _dir: None,
            pg_name: Some((admin, name)),
        })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.pg_name.is_some()
    }
}

pub(crate) struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    pub client_id: String,
    pub clock: ManualClock,
    pub state: tessera_server::AppState,
    pub db: Arc<TestDb>,
    /// `http://ADDR` of `GET /metrics` when the config set `metrics_listen`.
    pub metrics_base: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A fixed master key for PostgreSQL tests (which require one) and restart tests.
pub(crate) fn test_master_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// The fixed access-token signing key every test server starts with (PKCS#8 DER of an
/// RSA-2048 key made once with `openssl genpkey`), so no test pays for a key generation.
pub(crate) fn test_signing_key() -> Arc<zeroize::Zeroizing<Vec<u8>>> {
    use base64::Engine;
    let b64: String = include_str!("fixtures/signing_key.pk8.b64")
        .split_whitespace()
        .collect();
    Arc::new(zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    ))
}

pub(crate) fn config_for(db: &TestDb) -> Config {
    let mut c = Config::new(db.url.clone());
    c.first_signing_key = Some(test_signing_key());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.environment_name = "Tessera Test".into();
    if db.is_postgres() {
        c.master_key = Some(zeroize::Zeroizing::new(test_master_key()));
    }
    c
}

impl TestApp {
    /// `POST /user_management/authenticate` with this app's client id and API key added to
    /// `body`.
    pub(crate) async fn authenticate(&self, body: Value) -> (StatusCode, Value) {
        let mut b = body;
        b["client_id"] = json!(self.client_id);
        b["client_secret"] = json!(self.key);
        let r = self
            .http
            .post(self.url("/user_management/authenticate"))
            .json(&b)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub(crate) async fn spawn(backend: Backend) -> Option<TestApp> {
        let db = Arc::new(TestDb::new(backend).await?);
        let cfg = config_for(&db);
        Some(Self::spawn_with(db, cfg, ManualClock::new(Timestamp(T0))).await)
    }

    /// Like [`TestApp::spawn`] with configuration changes.
    pub(crate) async fn spawn_configured(
        backend: Backend,
        change: impl FnOnce(&mut Config),
    ) -> Option<TestApp> {
        let db = Arc::new(TestDb::new(backend).await?);
        let mut cfg = config_for(&db);
        change(&mut cfg);
        Some(Self::spawn_with(db, cfg, ManualClock::new(Timestamp(T0))).await)
    }

    /// The TOTP code for `secret` at the server's clock, `delta` steps away.
    pub(crate) fn totp_code(&self, secret_b32: &str, delta: i64) -> String {
        use tessera_core::Clock;
        let s = tessera_core::totp::TotpSecret::from_base32(secret_b32).unwrap();
        let step = tessera_core::totp::step_at(self.clock.now().unix_seconds()) + delta;
        tessera_core::totp::code_for_step(&s, step)
    }

    /// Enrols a standalone TOTP factor; returns (factor id, secret).
    pub(crate) async fn totp_factor(&self, user_id: Option<&str>) -> (String, String) {
        let mut body =
            json!({ "type": "totp", "totp_issuer": "Foo Corp", "totp_user": "alan@example.com" });
        if let Some(u) = user_id {
            body["user_id"] = json!(u);
        }
        let (s, f) = self.post("/auth/factors/enroll", body).await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        (
            f["id"].as_str().unwrap().to_owned(),
            f["totp"]["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Challenges a factor; returns the challenge.
    pub(crate) async fn challenge(&self, factor_id: &str) -> Value {
        let (s, c) = self
            .post(&format!("/auth/factors/{factor_id}/challenge"), json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        c
    }

    pub(crate) async fn verify(&self, challenge_id: &str, code: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/auth/challenges/{challenge_id}/verify"),
            json!({ "code": code }),
        )
        .await
    }

    pub(crate) async fn spawn_with(db: Arc<TestDb>, cfg: Config, clock: ManualClock) -> TestApp {
        // Server logs appear in a failing test's output (warnings and errors only).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let app = Application::build(cfg, Arc::new(clock.clone()))
            .await
            .expect("server builds");
        let addr = app.local_addr();
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let state = app.state().clone();
        let key = match app.bootstrap_key.clone() {
            Some(k) => k,
            None => {
                tessera_server::startup::create_api_key(&state.store, &clock, "test")
                    .await
                    .unwrap()
                    .1
            }
        };
        let client_id = state.client_id.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            key,
            client_id,
            clock,
            state,
            db,
            metrics_base,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it (pools closed).
    pub(crate) async fn stop(mut self) -> Arc<TestDb> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
        self.state.store.close().await;
        self.db.clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the API key and, when given, a JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, v)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub(crate) async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub(crate) async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    pub(crate) async fn create_user(&self, email: &str) -> Value {
        let (s, u) = self
            .post(
                "/user_management/users",
                json!({ "email": email, "password": "correct horse battery" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        u
    }

    pub(crate) async fn enroll_totp(&self, user_id: &str, body: Value) -> Value {
        let (s, v) = self
            .post(
                &format!("/user_management/users/{user_id}/auth_factors"),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

/// Declares each listed `async fn name(app: TestApp)` as two tests, `name::sqlite` and
/// `name::postgres`; the PostgreSQL one passes vacuously (and says so) without a test URL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await.unwrap();
                    super::$name(app).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run"),
                    }
                }
            }
        )*
    };
}

/// Decodes a `data:image/png;base64,...` QR code to its text with an independent reader.
pub(crate) fn decode_qr_data_uri(data_uri: &str) -> String {
    use base64::Engine;
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("PNG data URI");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let dec = png::Decoder::new(bytes.as_slice());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h, line) = (info.width as usize, info.height as usize, info.line_size);
    assert!(w >= 200 && h == w, "a QR code phones can scan: {w}x{h}");
    let bit_depth = info.bit_depth as usize;
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let bit = x * bit_depth;
        let byte = buf[y * line + bit / 8];
        if bit_depth == 8 {
            byte
        } else if byte & (0x80 >> (bit % 8)) != 0 {
            255
        } else {
            0
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().unwrap().1
}
