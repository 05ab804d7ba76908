//! The command line: `tessera [serve]`, `tessera api-keys ...`, `tessera client-id`.
//! Secrets go to stdout alone on their line (scriptable); everything else goes to the log
//! on stderr.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_core::{Clock, SystemClock};
use tessera_store::DatabaseUrl;

use crate::{Application, Config};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Self-hosted MFA and user sign-in server speaking the WorkOS API"
)]
struct Cli {
    /// Database: a SQLite file path (default, created on first start) or postgres://...
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_URL",
        default_value = "tessera.db"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start: the size of `Serve` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (the default).
    Serve(ServeArgs),
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
    /// Authentication factors (lockout after consecutive failed verifications).
    #[command(subcommand)]
    Factors(FactorsCommand),
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
    let (store, _) = crate::startup::open_store(config, clock).await?;
    let r = match &cmd {
        FactorsCommand::Unlock { factor_id } => {
            crate::services::mfa::unlock_factor(&store, clock.now(), factor_id).await
        }
    };
    store.close().await;
    r?;
    let FactorsCommand::Unlock { factor_id } = cmd;
    println!("unlocked {factor_id}");
    Ok(())
}

// ---- end of `tessera factors` -------------------------------------------------------------

#[derive(Debug, Subcommand)]
enum SettingsCommand {
    /// Require MFA for every password sign-in (`on`) or only for users with a factor (`off`).
    #[command(name = "mfa-required")]
    MfaRequired {
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
    /// Default TOTP issuer shown in authenticator apps.
    #[arg(long, env = "TESSERA_ENVIRONMENT_NAME", default_value = "Tessera")]
    environment_name: String,
    /// Challenge lifetime in seconds.
    #[arg(long, env = "TESSERA_CHALLENGE_TTL_SECONDS", default_value_t = 600)]
    challenge_ttl_seconds: i64,
    /// Database connection pool size.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 16)]
    max_connections: u32,
    /// TOTP steps accepted either side of the current one.
    #[arg(long, env = "TESSERA_TOTP_WINDOW", default_value_t = 1)]
    totp_window: u32,
    /// Where SMS codes go: log (development), webhook, twilio.
    #[arg(long, env = "TESSERA_SMS_PROVIDER", default_value = "log")]
    sms_provider: String,
    #[arg(long, env = "TESSERA_SMS_WEBHOOK_URL")]
    sms_webhook_url: Option<String>,
    #[arg(long, env = "TESSERA_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    #[arg(long, env = "TESSERA_TWILIO_FROM")]
    twilio_from: Option<String>,
    #[arg(
        long,
        env = "TESSERA_TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    twilio_base_url: String,
    /// `iss` claim of access tokens.
    #[arg(long, env = "TESSERA_ISSUER", default_value = "tessera")]
    issuer: String,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
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
    match cli
        .command
        .unwrap_or(Command::Serve(ServeArgs::parse_default()))
    {
        Command::Serve(args) => {
            config.listen = args.listen;
            config.environment_name = args.environment_name.clone();
            config.challenge_ttl_ms = args.challenge_ttl_seconds.saturating_mul(1000);
            config.max_connections = args.max_connections;
            config.totp_window = args.totp_window;
            config.issuer = args.issuer.clone();
            config.access_token_ttl_ms = args.access_token_ttl_seconds.clamp(30, 86_400) * 1000;
            config.api_key_cache_ms = args.api_key_cache_ms.clamp(0, 60_000);
            config.sms_provider = sms_provider(&args)?;
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
        Command::ApiKeys(cmd) => {
            let (store, _) = crate::startup::open_store(&config, clock.as_ref()).await?;
            let r = api_keys(&store, clock.as_ref(), cmd).await;
            store.close().await;
            r
        }
        Command::Settings(SettingsCommand::MfaRequired { value }) => {
            let (store, _) = crate::startup::open_store(&config, clock.as_ref()).await?;
            store.set_mfa_required(value == "on").await?;
            store.close().await;
            println!("mfa-required: {value}");
            Ok(())
        }
        Command::SigningKeys(SigningKeysCommand::Rotate) => {
            let keys = crate::startup::load_keys(&config)?;
            let (store, _) = crate::startup::open_store(&config, clock.as_ref()).await?;
            let kid =
                crate::services::signin::rotate_signing_key(&store, &keys, clock.now()).await?;
            store.close().await;
            println!("{kid}");
            Ok(())
        }
        Command::Factors(cmd) => factors(&config, clock.as_ref(), cmd).await,
        Command::ClientId => {
            let (store, client_id) = crate::startup::open_store(&config, clock.as_ref()).await?;
            store.close().await;
            println!("{client_id}");
            Ok(())
        }
    }
}

impl ServeArgs {
    /// `tessera` with no subcommand serves, with flags taken from the environment or defaults.
    fn parse_default() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(["tessera"]).args
    }
}

async fn api_keys(
    store: &tessera_store::Store,
    clock: &dyn Clock,
    cmd: ApiKeysCommand,
) -> anyhow::Result<()> {
    match cmd {
        ApiKeysCommand::Create { name } => {
            let (row, secret) = crate::startup::create_api_key(store, clock, &name).await?;
            println!("{secret}");
            println!("id: {}  name: {}", row.id, row.name);
            eprintln!("Store this key now: it is shown only once.");
        }
        ApiKeysCommand::List => {
            for k in store.list_api_keys().await? {
                let status = match k.revoked_at {
                    Some(t) => {
                        format!("revoked {}", tessera_core::Timestamp(t).to_rfc3339_millis())
                    }
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\tsk_{}_...\t{}\t{}",
                    k.id,
                    k.name,
                    k.lookup,
                    tessera_core::Timestamp(k.created_at).to_rfc3339_millis(),
                    status
                );
            }
        }
        ApiKeysCommand::Revoke { id } => {
            store.revoke_api_key(&id, clock.now().millis()).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
