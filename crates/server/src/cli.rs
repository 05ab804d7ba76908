//! The command line: `tessera [serve] [FLAGS]`, `tessera init`, `tessera api-keys ...`,
//! `tessera client-id`, `tessera settings ...`, `tessera signing-keys ...`.
//! Secrets and ids go to stdout alone on their line (scriptable); everything else goes to
//! stderr. Only `serve` and `init` create a database (and its key file, in the same step);
//! every other command refuses a missing one, and each command that changes state says on
//! stderr which database it changed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use tessera_core::{Clock, SystemClock};
use tessera_store::DatabaseUrl;

use crate::logging::LogFormat;
use crate::{Application, Config};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Self-hosted MFA and user sign-in server speaking the WorkOS API",
    long_about = "Self-hosted MFA and user sign-in server speaking the WorkOS API.\n\nWithout a command, `tessera [FLAGS]` is `tessera serve [FLAGS]`: it takes the same flags."
)]
struct Cli {
    /// Database: a SQLite file path (default; `serve` and `init` create it) or postgres://...
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_URL",
        default_value = "tessera.db"
    )]
    database_url: String,
    /// Log lines on stderr: text, or json (one object per line, for log shippers).
    #[arg(
        long,
        global = true,
        env = "TESSERA_LOG_FORMAT",
        default_value = "text",
        value_parser = clap::builder::ValueParser::new(str::parse::<LogFormat>)
    )]
    log_format: LogFormat,
    /// The flags of `serve`, for `tessera` without a command.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (the default): creates the database and its key file on first start.
    Serve(ServeArgs),
    /// Create the database (and, for SQLite without TESSERA_MASTER_KEY, its key file) without
    /// serving, and print the client id. Does nothing to a database that exists.
    Init,
    /// Manage API keys (`sk_...`).
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Print this environment's client id.
    #[command(name = "client-id")]
    ClientId,
    /// Environment settings, applied to running servers without a restart.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Access-token signing keys.
    #[command(subcommand, name = "signing-keys")]
    SigningKeys(SigningKeysCommand),
    /// Dashboard administrators (apart from end users).
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// The allow-list of redirect URIs for hosted sign-in and logout.
    #[command(subcommand, name = "redirect-uris")]
    RedirectUris(RedirectUrisCommand),
    /// Authentication factors (lockout after consecutive failed verifications).
    #[command(subcommand)]
    Factors(FactorsCommand),
    /// The master key that seals secrets at rest.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
    /// Write a consistent copy of the SQLite database to PATH (mode 0600) while servers keep
    /// running. The copy holds no master key: keep the key file (or TESSERA_MASTER_KEY) too.
    /// PostgreSQL: use pg_dump.
    Backup {
        /// The file to write; it must not exist (unless --force).
        path: std::path::PathBuf,
        /// Replace PATH if it exists (never the database itself or its key file).
        #[arg(long)]
        force: bool,
    },
}

// ---- redirect-uris (hosted sign-in) --------------------------------------------------------

#[derive(Debug, Subcommand)]
enum RedirectUrisCommand {
    /// Allow a URI, matched exactly. `http://` only on localhost, 127.0.0.1 and [::1], where
    /// a port of `*` (http://localhost:*/callback) allows any port.
    Add { uri: String },
    /// Print the allowed URIs, one a line.
    List,
    /// Remove a URI.
    Remove { uri: String },
}

/// Runs a `redirect-uris` command; `Ok(true)` when it changed the database.
async fn redirect_uris(
    store: &tessera_store::Store,
    clock: &dyn Clock,
    cmd: RedirectUrisCommand,
) -> anyhow::Result<bool> {
    Ok(match cmd {
        RedirectUrisCommand::Add { uri } => {
            tessera_core::authkit::check_redirect_entry(&uri)
                .map_err(|e| anyhow::anyhow!("cannot allow '{uri}': {e}"))?;
            let added = store.add_redirect_uri(&uri, clock.now()).await?;
            if added {
                println!("added {uri}");
            } else {
                println!("already allowed: {uri}");
            }
            added
        }
        RedirectUrisCommand::List => {
            for uri in store.list_redirect_uris().await? {
                println!("{uri}");
            }
            false
        }
        RedirectUrisCommand::Remove { uri } => {
            if !store.remove_redirect_uri(&uri).await? {
                anyhow::bail!("'{uri}' is not on the allow-list");
            }
            println!("removed {uri}");
            true
        }
    })
}

// ---- `tessera factors` (lockout administration) -------------------------------------------

#[derive(Debug, Subcommand)]
enum FactorsCommand {
    /// Lift the lockout of a factor locked after too many consecutive failed verifications
    /// (and clear its count). Recorded as the event `authentication_factor.unlocked`.
    Unlock {
        /// The factor's id (`auth_factor_...`).
        factor_id: String,
    },
}

async fn factors(config: &Config, clock: &dyn Clock, cmd: FactorsCommand) -> anyhow::Result<()> {
    let (store, _) = crate::startup::open_existing_store(config).await?;
    let r = match &cmd {
        FactorsCommand::Unlock { factor_id } => {
            crate::services::mfa::unlock_factor(&store, clock.now(), factor_id).await
        }
    };
    store.close().await;
    r?;
    let FactorsCommand::Unlock { factor_id } = cmd;
    println!("unlocked {factor_id}");
    changed(config);
    Ok(())
}

// ---- end of `tessera factors` -------------------------------------------------------------

#[derive(Debug, Subcommand)]
enum MasterKeyCommand {
    /// Seal every secret again under the current master key (TESSERA_MASTER_KEY or the key
    /// file), while servers run, so that old keys can leave TESSERA_OLD_MASTER_KEYS. Refuses,
    /// changing nothing, if any secret does not open with the configured keys.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum SettingsCommand {
    /// Require MFA for every password sign-in (`on`) or only for users with a factor (`off`).
    #[command(name = "mfa-required")]
    MfaRequired {
        #[arg(value_parser = ["on", "off"])]
        value: String,
    },
    /// Let visitors of the hosted pages create an account (`on`); `off` (the default) shows
    /// sign-in only.
    #[command(name = "sign-up")]
    SignUp {
        #[arg(value_parser = ["on", "off"])]
        value: String,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeysCommand {
    /// Make a new signing key; the old one stays in the JWKS until its tokens expire.
    Rotate,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, a listener of its own
    /// (off by default; it must differ from --listen).
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Default TOTP issuer shown in authenticator apps.
    #[arg(long, env = "TESSERA_ENVIRONMENT_NAME", default_value = "Tessera")]
    environment_name: String,
    /// Challenge lifetime in seconds.
    #[arg(long, env = "TESSERA_CHALLENGE_TTL_SECONDS", default_value_t = 600)]
    challenge_ttl_seconds: i64,
    /// Database connection pool size.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 16)]
    max_connections: u32,
    /// PostgreSQL: seconds a request waits for a database connection, and then for each
    /// database operation, before it is answered 503; also the wait for the database at start.
    #[arg(long, env = "TESSERA_DATABASE_TIMEOUT_SECONDS", default_value_t = 5)]
    database_timeout_seconds: u64,
    /// TOTP steps accepted either side of the current one.
    #[arg(long, env = "TESSERA_TOTP_WINDOW", default_value_t = 1)]
    totp_window: u32,
    /// Where SMS codes go: log (written to the log, codes included: development only),
    /// webhook, twilio.
    #[arg(long, env = "TESSERA_SMS_PROVIDER", default_value = "log")]
    sms_provider: String,
    /// webhook: the URL that receives each message as signed JSON (required; the signing
    /// key comes from TESSERA_SMS_WEBHOOK_SECRET).
    #[arg(long, env = "TESSERA_SMS_WEBHOOK_URL")]
    sms_webhook_url: Option<String>,
    /// twilio: the account SID (required; the auth token comes from
    /// TESSERA_TWILIO_AUTH_TOKEN).
    #[arg(long, env = "TESSERA_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    /// twilio: the sending phone number (required).
    #[arg(long, env = "TESSERA_TWILIO_FROM")]
    twilio_from: Option<String>,
    /// twilio: the API host (change it only for a test double).
    #[arg(
        long,
        env = "TESSERA_TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    twilio_base_url: String,
    /// The URL clients reach this server at, e.g. https://auth.example.com (default:
    /// http:// + the listen address). Access tokens carry it as `iss`; `https://` makes the
    /// dashboard's and hosted pages' cookies `Secure`.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    public_url: Option<String>,
    /// `iss` claim of access tokens, when it must differ from the public URL.
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: Option<String>,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 300)]
    access_token_ttl_seconds: i64,
    /// Consecutive failed verifications that lock a factor until `tessera factors unlock`
    /// (1 to 100; NIST SP 800-63B allows at most 100).
    #[arg(long, env = "TESSERA_FACTOR_LOCKOUT_AFTER", default_value_t = 100)]
    factor_lockout_after: i64,
    /// How long (ms) a verified API key is trusted before it is read again; a revocation
    /// takes effect within this time. 0: read on every request.
    #[arg(long, env = "TESSERA_API_KEY_CACHE_MS", default_value_t = 1000)]
    api_key_cache_ms: i64,
    /// Sessions end this long after sign-in (30d, 12h, 90m, 45s or seconds).
    #[arg(long, env = "TESSERA_SESSION_MAX_AGE", default_value = "30d", value_parser = crate::config::parse_duration_ms)]
    session_max_age: i64,
    /// Sessions end when not refreshed for this long.
    #[arg(long, env = "TESSERA_SESSION_INACTIVITY_TIMEOUT", default_value = "7d", value_parser = crate::config::parse_duration_ms)]
    session_inactivity_timeout: i64,
    /// Seconds during which a refresh token presented again by the same client gets the
    /// same answer instead of revoking the session (a retry); 0: off.
    #[arg(
        long,
        env = "TESSERA_REFRESH_TOKEN_REUSE_GRACE_SECONDS",
        default_value_t = 10
    )]
    refresh_token_reuse_grace_seconds: i64,
    /// Seconds a connection with no request in flight stays open (HTTP/1 and HTTP/2).
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT_SECONDS", default_value_t = 60)]
    idle_timeout_seconds: u64,
    /// Open client connections at most; past it new ones are closed at once.
    #[arg(long, env = "TESSERA_MAX_OPEN_CONNECTIONS", default_value_t = 4096)]
    max_open_connections: usize,
    /// Days events are kept before the maintenance task deletes them; 0 keeps them forever.
    #[arg(long, env = "TESSERA_EVENT_RETENTION_DAYS", default_value_t = 90)]
    event_retention_days: u32,
}

/// The SMS provider from flags and the secret environment variables.
fn sms_provider(args: &ServeArgs) -> anyhow::Result<crate::config::SmsProvider> {
    use crate::config::SmsProvider;
    let need = |v: &Option<String>, name: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{name} is required with this SMS provider"))
    };
    let secret = |name: &str| {
        env_secret(name).ok_or_else(|| anyhow::anyhow!("{name} is required with this SMS provider"))
    };
    Ok(match args.sms_provider.as_str() {
        "log" => SmsProvider::Log,
        "webhook" => SmsProvider::Webhook {
            url: need(&args.sms_webhook_url, "TESSERA_SMS_WEBHOOK_URL")?,
            secret: secret("TESSERA_SMS_WEBHOOK_SECRET")?,
        },
        "twilio" => SmsProvider::Twilio {
            base_url: args.twilio_base_url.clone(),
            account_sid: need(&args.twilio_account_sid, "TESSERA_TWILIO_ACCOUNT_SID")?,
            auth_token: secret("TESSERA_TWILIO_AUTH_TOKEN")?,
            from: need(&args.twilio_from, "TESSERA_TWILIO_FROM")?,
        },
        other => anyhow::bail!("unknown SMS provider '{other}': use log, webhook or twilio"),
    })
}

#[derive(Debug, Subcommand)]
enum ApiKeysCommand {
    /// Create a key and print it (once) on the first line of stdout.
    Create {
        /// A label for the key, shown by `api-keys list` (e.g. the service that uses it).
        #[arg(long)]
        name: String,
    },
    /// List keys (ids, names, status; never the secrets).
    List,
    /// Revoke a key by id (`key_...`).
    Revoke { id: String },
}

fn env_secret(name: &str) -> Option<zeroize::Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(zeroize::Zeroizing::new)
}

pub fn main() -> ExitCode {
    // The command line first: it says how to log (a bad value is refused here, before
    // anything is opened or logged).
    let cli = parse();
    crate::logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. `tessera --listen ADDR` serves; a flag of the default command
/// given together with another command (`tessera --listen ADDR api-keys list`) is refused
/// rather than silently ignored. (clap's `args_conflicts_with_subcommands` would refuse the
/// global `--database-url` before a command too, so this is checked here.)
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let matches = cmd.get_matches_mut();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((name, _)) = matches.subcommand() {
        let serve_flag = matches.ids().find(|id| {
            !matches!(id.as_str(), "database_url" | "log_format")
                && matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
        });
        if let Some(id) = serve_flag {
            cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--{} is a flag of `serve` and cannot be used with `{name}`",
                    id.as_str().replace('_', "-")
                ),
            )
            .exit();
        }
    }
    cli
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(&cli.database_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut config = Config::new(url);
    config.master_key = env_secret("TESSERA_MASTER_KEY");
    config.old_master_keys = env_secret("TESSERA_OLD_MASTER_KEYS")
        .map(|s| {
            s.split(',')
                .map(|k| zeroize::Zeroizing::new(k.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => {
            config.listen = args.listen;
            config.metrics_listen = args.metrics_listen;
            config.environment_name = args.environment_name.clone();
            config.challenge_ttl_ms = args.challenge_ttl_seconds.saturating_mul(1000);
            config.max_connections = args.max_connections;
            config.database_timeout =
                std::time::Duration::from_secs(args.database_timeout_seconds.clamp(1, 300));
            config.totp_window = args.totp_window;
            config.public_url = match &args.public_url {
                Some(u) => crate::config::normalize_public_url(u).map_err(anyhow::Error::msg)?,
                // Filled in with the bound address (the listen port may be 0).
                None => String::new(),
            };
            config.issuer = args.issuer.clone().filter(|s| !s.trim().is_empty());
            config.event_retention_days = args.event_retention_days;
            config.access_token_ttl_ms = args.access_token_ttl_seconds.clamp(30, 86_400) * 1000;
            config.api_key_cache_ms = args.api_key_cache_ms.clamp(0, 60_000);
            config.refresh_reuse_grace_ms =
                args.refresh_token_reuse_grace_seconds.clamp(0, 60) * 1000;
            config.idle_timeout =
                std::time::Duration::from_secs(args.idle_timeout_seconds.clamp(1, 3600));
            config.max_open_connections = args.max_open_connections.max(1);
            config.sms_provider = sms_provider(&args)?;
            config.session_max_age_ms = args.session_max_age;
            config.session_inactivity_ms = args.session_inactivity_timeout;
            if !(1..=100).contains(&args.factor_lockout_after) {
                anyhow::bail!(
                    "--factor-lockout-after must be between 1 and 100 (NIST SP 800-63B allows at most 100 consecutive failures), not {}",
                    args.factor_lockout_after
                );
            }
            config.factor_lockout_after = args.factor_lockout_after;
            let app = Application::build(config, clock).await?;
            app.run_until(crate::startup::shutdown_signal()).await?;
            Ok(())
        }
        Command::Init => {
            // The same first steps as `serve`: the key file (SQLite without
            // TESSERA_MASTER_KEY) before the database, then the environment and the first
            // signing key.
            let keys = crate::startup::load_keys(&config)?;
            let (store, client_id) = crate::startup::open_store(&config, clock.as_ref()).await?;
            let r = async {
                crate::startup::verify_master_key(&store, &keys, clock.now()).await?;
                if store.find_active_signing_key().await?.is_none() {
                    crate::services::signin::rotate_signing_key(&store, &keys, clock.now()).await?;
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            store.close().await;
            r?;
            println!("{client_id}");
            eprintln!("ready: {}", config.database_url.describe());
            Ok(())
        }
        Command::ApiKeys(cmd) => {
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let r = api_keys(&store, clock.as_ref(), cmd).await;
            store.close().await;
            if r? {
                changed(&config);
            }
            Ok(())
        }
        Command::Settings(SettingsCommand::MfaRequired { value }) => {
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let r = store.set_mfa_required(value == "on").await;
            store.close().await;
            r?;
            println!("mfa-required: {value}");
            changed(&config);
            Ok(())
        }
        Command::Settings(SettingsCommand::SignUp { value }) => {
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let r = store.set_sign_up_enabled(value == "on").await;
            store.close().await;
            r?;
            println!("sign-up: {value}");
            changed(&config);
            Ok(())
        }
        Command::RedirectUris(cmd) => {
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let r = redirect_uris(&store, clock.as_ref(), cmd).await;
            store.close().await;
            if r? {
                changed(&config);
            }
            Ok(())
        }
        Command::SigningKeys(SigningKeysCommand::Rotate) => {
            // The database first: for SQLite, loading the keys of a database that does not
            // exist would create a key file.
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let r = async {
                let keys = crate::startup::load_keys(&config)?;
                crate::startup::verify_master_key(&store, &keys, clock.now()).await?;
                Ok::<_, anyhow::Error>(
                    crate::services::signin::rotate_signing_key(&store, &keys, clock.now()).await?,
                )
            }
            .await;
            store.close().await;
            println!("{}", r?);
            changed(&config);
            Ok(())
        }
        Command::Admins(cmd) => {
            let (store, _) = crate::startup::open_existing_store(&config).await?;
            let changes = !matches!(cmd, AdminsCommand::List);
            let r = admins(&store, clock.as_ref(), cmd).await;
            store.close().await;
            r?;
            if changes {
                changed(&config);
            }
            Ok(())
        }
        Command::Factors(cmd) => factors(&config, clock.as_ref(), cmd).await,
        Command::MasterKey(MasterKeyCommand::Rotate) => {
            crate::cli_ops::rotate_master_key(&config, clock.as_ref()).await
        }
        Command::Backup { path, force } => crate::cli_ops::backup(&config, &path, force).await,
        Command::ClientId => {
            let (store, client_id) = crate::startup::open_existing_store(&config).await?;
            store.close().await;
            println!("{client_id}");
            Ok(())
        }
    }
}

/// Says on stderr which database a command changed (stdout stays for keys and ids).
pub(crate) fn changed(config: &Config) {
    eprintln!("changed: {}", config.database_url.describe());
}

/// Runs an `api-keys` command; `Ok(true)` when it changed the database.
async fn api_keys(
    store: &tessera_store::Store,
    clock: &dyn Clock,
    cmd: ApiKeysCommand,
) -> anyhow::Result<bool> {
    Ok(match cmd {
        ApiKeysCommand::Create { name } => {
            let (row, secret) = crate::startup::create_api_key(store, clock, &name).await?;
            println!("{secret}");
            println!("id: {}  name: {}", row.id, row.name);
            eprintln!("Store this key now: it is shown only once.");
            true
        }
        ApiKeysCommand::List => {
            for k in store.list_api_keys().await? {
                let status = match k.revoked_at {
                    Some(t) => {
                        format!("revoked {}", t.to_rfc3339_millis())
                    }
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\tsk_{}_...\t{}\t{}",
                    k.id,
                    k.name,
                    k.lookup,
                    k.created_at.to_rfc3339_millis(),
                    status
                );
            }
            false
        }
        ApiKeysCommand::Revoke { id } => {
            store.revoke_api_key(&id, clock.now()).await?;
            println!("revoked {id}");
            true
        }
    })
}

// ---- tessera admins ------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
enum AdminsCommand {
    /// Add an admin. The password is the first line of standard input (at least 12
    /// characters); prints the admin's id. They set up TOTP at their first sign-in.
    Add { email: String },
    /// List admins (email, id, whether TOTP is set up).
    List,
    /// Remove an admin; their dashboard sessions end at once.
    Remove { email: String },
    /// Delete an admin's TOTP factor (a locked-out admin enrols again at the next sign-in).
    #[command(name = "reset-mfa")]
    ResetMfa { email: String },
}

async fn admins(
    store: &tessera_store::Store,
    clock: &dyn Clock,
    cmd: AdminsCommand,
) -> anyhow::Result<()> {
    use crate::services::admins as svc;
    let describe = |e: tessera_core::Error| match e {
        tessera_core::Error::Validation(p) => anyhow::anyhow!(
            "{}",
            p.iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        tessera_core::Error::PasswordStrength(why) => anyhow::anyhow!("{why}"),
        tessera_core::Error::EmailNotAvailable(email) => {
            anyhow::anyhow!("an admin with the email {email} exists already")
        }
        other => anyhow::anyhow!("{other}"),
    };
    match cmd {
        AdminsCommand::Add { email } => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let row = svc::add(store, clock.now(), &email, password)
                .await
                .map_err(describe)?;
            println!("{}", row.id);
        }
        AdminsCommand::List => {
            for a in store.list_admins().await? {
                let mfa = if a.factor_id.is_some() {
                    "totp"
                } else {
                    "no totp yet"
                };
                println!("{}\t{}\t{}", a.email, a.id, mfa);
            }
        }
        AdminsCommand::Remove { email } => {
            let a = svc::remove(store, clock.now(), &email)
                .await
                .map_err(describe)?;
            println!("removed {}", a.email);
        }
        AdminsCommand::ResetMfa { email } => {
            let a = svc::reset_mfa(store, clock.now(), &email)
                .await
                .map_err(describe)?;
            println!("reset MFA of {}", a.email);
        }
    }
    Ok(())
}
