//! The command line: `serve`, `import`, `export` and `admin`, each a thin call into the
//! library. Every flag can also come from the environment variable named in its help.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;

use crate::config::{self, Config, ConfigError, DEFAULT_DATABASE_URL, OidcConfig};
use crate::db::scope::Scope;
use crate::db::{Db, Role, datasets, users};
use crate::export::{ExportOptions, Exporter, Format};
use crate::{Application, import};

#[derive(Parser, Debug)]
#[command(
    name = "tracecoder",
    version,
    about = "Open coding of LLM traces: import, annotate, export."
)]
pub struct Cli {
    /// Database: a SQLite file (`sqlite://tracecoder.db?mode=rwc`) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web app.
    Serve(Box<ServeArgs>),
    /// Import a CSV file into a dataset (created if new), with a progress bar.
    Import(ImportArgs),
    /// Export a dataset's annotations as CSV or JSONL.
    Export(ExportArgs),
    /// Manage admins.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Assign a dataset's traces to annotators: a shared overlap everyone codes, the rest
    /// balanced among them (or `--clear` to remove the assignment).
    Assign(crate::cli_review::AssignArgs),
    /// Write a dataset's reference labels (adjudicated or unanimous) as CSV.
    Reference(crate::cli_review::ReferenceArgs),
    /// LLM judges' results, measured against the reference labels.
    Judge {
        #[command(subcommand)]
        action: crate::cli_review::JudgeAction,
    },
    /// The codebook: open codes grouped into failure modes, exported or imported.
    Codebook {
        #[command(subcommand)]
        action: crate::cli_codebook::CodebookAction,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Without OIDC only loopback addresses are allowed.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
    /// Keep sessions in Redis (e.g. redis://127.0.0.1:6379) instead of the database.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// OIDC issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    #[arg(long, env = "OIDC_ISSUER_URL")]
    pub oidc_issuer_url: Option<url::Url>,
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The identity provider's name on the sign-in button (default: the issuer's host).
    #[arg(long, env = "OIDC_PROVIDER_NAME")]
    pub oidc_provider_name: Option<String>,
    /// Send people from /login straight to the identity provider (no sign-in button).
    #[arg(long, env = "OIDC_STRAIGHT_TO_PROVIDER", default_value_t = false)]
    pub oidc_straight_to_provider: bool,
    /// The URL people use to reach the app; the OIDC redirect is `{PUBLIC_URL}/auth/callback`.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// Emails that are admins (comma separated).
    #[arg(long, env = "ADMIN_EMAILS", default_value = "")]
    pub admin_emails: String,
    /// Minutes without a request before a session ends.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 480)]
    pub session_idle_minutes: u64,
    /// Take the client IP for rate limits from X-Forwarded-For / Forwarded (only behind a
    /// proxy that sets them).
    #[arg(long, env = "TRUST_PROXY_HEADERS", default_value_t = false)]
    pub trust_proxy_headers: bool,
    /// Largest CSV upload through the web form, in MB.
    #[arg(long, env = "MAX_UPLOAD_MB", default_value_t = 512)]
    pub max_upload_mb: u64,
    /// Sign-in attempts per client IP in a burst (then one per `LOGIN_RATE_SECONDS`).
    #[arg(long, env = "LOGIN_RATE_BURST", default_value_t = 100)]
    pub login_rate_burst: u32,
    /// Seconds for one more sign-in attempt per client IP.
    #[arg(long, env = "LOGIN_RATE_SECONDS", default_value_t = 1)]
    pub login_rate_seconds: u64,
    /// Sign-in attempts per account in a burst (then one per `RATE_LIMIT_SECONDS`).
    #[arg(long, env = "LOGIN_ACCOUNT_BURST", default_value_t = 10)]
    pub login_account_burst: u32,
    /// Imports per client IP in a burst.
    #[arg(long, env = "IMPORT_RATE_BURST", default_value_t = 10)]
    pub import_rate_burst: u32,
    /// Seconds for one more attempt per account (sign-in) or client IP (imports).
    #[arg(long, env = "RATE_LIMIT_SECONDS", default_value_t = 6)]
    pub rate_limit_seconds: u64,
    /// Seconds a connection may take to send a request head (also the keep-alive idle time).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 30)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a client may leave a response unread before its connection is closed.
    #[arg(long, env = "RESPONSE_STALL_TIMEOUT_SECONDS", default_value_t = 60)]
    pub response_stall_timeout_seconds: u64,
    /// Connections served at once (lowered to fit the open-file limit).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Uploads slower than this (KB/s, over each `UPLOAD_RATE_WINDOW_SECONDS`) are cut off; 0: no minimum.
    #[arg(long, env = "UPLOAD_MIN_KB_PER_SECOND", default_value_t = 8)]
    pub upload_min_kb_per_second: u64,
    #[arg(long, env = "UPLOAD_RATE_WINDOW_SECONDS", default_value_t = 30)]
    pub upload_rate_window_seconds: u64,
    /// `/metrics` requires `Authorization: Bearer <token>`.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve `/metrics` only on this separate address (e.g. 10.0.0.11:9100).
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// Trust an email without an `email_verified` claim (only for a provider that issues
    /// addresses it controls).
    #[arg(long, env = "OIDC_ASSUME_EMAIL_VERIFIED", default_value_t = false)]
    pub oidc_assume_email_verified: bool,
    /// Milliseconds to pause after each 2,000-row batch a form import writes (throttling).
    #[arg(long, env = "IMPORT_PAUSE_MS", default_value_t = 0)]
    pub import_pause_ms: u64,
    /// Milliseconds of counting above which the codebook page shows a dataset's counts as
    /// last computed while annotators save, and counts again in the background.
    #[arg(long, env = "CODEBOOK_RECOUNT_BUDGET_MS", default_value_t = 50)]
    pub codebook_recount_budget_ms: u64,
    /// On SIGTERM, seconds running imports get to finish before they are stopped (and
    /// marked failed, their rows removed).
    #[arg(long, env = "IMPORT_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub import_shutdown_grace_seconds: u64,
    /// Seconds without a heartbeat after which an import is taken for dead and cleaned up.
    #[arg(long, env = "IMPORT_STALE_SECONDS", default_value_t = 15)]
    pub import_stale_seconds: u64,
    /// Load a generated demo dataset when the database has no traces yet.
    #[arg(long, env = "TRACECODER_DEMO", default_value_t = false)]
    pub demo: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Dataset name (created if no dataset has this name; case and spacing do not matter).
    #[arg(long)]
    pub dataset: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Milliseconds to pause after each 2,000-row batch (throttling on a busy box).
    #[arg(long, env = "IMPORT_PAUSE_MS", default_value_t = 0)]
    pub pause_ms: u64,
    /// Seconds without a heartbeat after which servers take an import for dead; use the
    /// servers' value.
    #[arg(long, env = "IMPORT_STALE_SECONDS", default_value_t = 15)]
    pub stale_seconds: u64,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Dataset name or slug.
    #[arg(long)]
    pub dataset: String,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also include traces nobody annotated.
    #[arg(long)]
    pub all_traces: bool,
    /// Only this annotator's annotations (by email).
    #[arg(long)]
    pub annotator: Option<String>,
    /// CSV: write cells exactly as stored. Without it, cells starting with `=`, `+`, `-`,
    /// `@`, a tab or a carriage return get a leading `'` so spreadsheets do not run them.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Make the user with this email an admin (they must have signed in once, with an email
    /// their identity provider marks verified).
    Grant { email: String },
    /// Remove admin rights from the user with this email.
    Revoke { email: String },
    /// List admins.
    List,
}

impl ServeArgs {
    /// The typed, validated configuration.
    pub fn into_config(self, database_url: String) -> Result<Config, ConfigError> {
        let oidc = match (self.oidc_issuer_url, self.oidc_client_id) {
            (Some(issuer_url), Some(client_id)) => Some(OidcConfig {
                issuer_url,
                client_id,
                client_secret: self.oidc_client_secret.map(SecretString::from),
                assume_email_verified: self.oidc_assume_email_verified,
                provider_name: self
                    .oidc_provider_name
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
                straight_to_provider: self.oidc_straight_to_provider,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "OIDC needs both OIDC_ISSUER_URL and OIDC_CLIENT_ID (and usually OIDC_CLIENT_SECRET)".into(),
                ));
            }
        };
        let config = Config {
            database_url,
            redis_url: self
                .redis_url
                .filter(|u| !u.is_empty())
                .map(SecretString::from),
            oidc,
            public_url: self.public_url,
            admin_emails: config::parse_admin_emails(&self.admin_emails),
            bind: self.bind,
            session_idle: Duration::from_secs(self.session_idle_minutes.max(1) * 60),
            trust_proxy_headers: self.trust_proxy_headers,
            max_upload_bytes: self.max_upload_mb.max(1) * 1024 * 1024,
            login_burst: self.login_rate_burst,
            login_ip_period: Duration::from_secs(self.login_rate_seconds.max(1)),
            login_account_burst: self.login_account_burst,
            import_burst: self.import_rate_burst,
            rate_limit_period: Duration::from_secs(self.rate_limit_seconds.max(1)),
            demo: self.demo,
            request_timeout: Duration::from_secs(30),
            import_pause: Duration::from_millis(self.import_pause_ms),
            codebook_recount_budget: Duration::from_millis(self.codebook_recount_budget_ms),
            import_grace: Duration::from_secs(self.import_shutdown_grace_seconds),
            import_stale_after: Duration::from_secs(self.import_stale_seconds.max(1)),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            response_stall_timeout: Duration::from_secs(self.response_stall_timeout_seconds),
            max_connections: self.max_connections,
            upload_min_bytes_per_second: self.upload_min_kb_per_second.saturating_mul(1024),
            upload_rate_window: Duration::from_secs(self.upload_rate_window_seconds),
            metrics_token: self
                .metrics_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            metrics_bind: self.metrics_bind,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs the command; the exit code is non-zero on any refusal or error.
pub fn main(cli: Cli) -> ExitCode {
    crate::telemetry::init(matches!(cli.log_format, LogFormat::Json));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config(cli.database_url)?;
            let app = Application::build(config).await?;
            // The address is also logged; the banner would break JSON log lines.
            if matches!(cli.log_format, LogFormat::Text) {
                eprintln!("Tracecoder is listening on http://{}", app.local_addr());
            }
            app.run().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import_file(&cli.database_url, args).await,
        Command::Export(args) => export(&cli.database_url, args).await,
        Command::Admin { action } => admin(&cli.database_url, action).await,
        Command::Assign(args) => {
            crate::cli_review::assign(&connect(&cli.database_url).await?, args).await
        }
        Command::Reference(args) => {
            crate::cli_review::reference(&connect(&cli.database_url).await?, args).await
        }
        Command::Judge { action } => {
            crate::cli_review::judge(&connect(&cli.database_url).await?, action).await
        }
        Command::Codebook { action } => {
            crate::cli_codebook::codebook(&connect(&cli.database_url).await?, action).await
        }
    }
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Db> {
    Db::connect_as(url, Duration::from_secs(30), Role::Command).await
}

async fn import_file(database_url: &str, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let file = match std::fs::File::open(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let db = connect(database_url).await?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let pending = match import::register(&db, &args.dataset, &name, None, size as i64).await {
        Ok(p) => import::PendingImport {
            pause_between_batches: Duration::from_millis(args.pause_ms),
            heartbeat_every: import::heartbeat_every(Duration::from_secs(
                args.stale_seconds.max(1),
            )),
            ..p
        },
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if pending.new_dataset {
        eprintln!(
            "New dataset \"{}\" at /d/{}",
            pending.dataset_name, pending.dataset_slug
        );
    }
    // Ctrl-C or SIGTERM stops the import cleanly: its rows are removed, it is marked failed.
    let shutdown = pending.shutdown.clone();
    let _on_signal = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        crate::app::stop_signal().await;
        shutdown.cancel();
    }));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let progress: import::ProgressFn = Box::new(move |rows, bytes| {
        b.set_position(bytes);
        b.set_message(format!("{rows} rows"));
    });
    let started = std::time::Instant::now();
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let report = match import::run(&db, &pending, reader, Some(progress)).await {
        Ok(report) => report,
        Err(e) => {
            bar.finish_and_clear();
            if e.downcast_ref::<import::Stopped>().is_some() {
                eprintln!("error: {e}; nothing from it was kept");
                return Ok(ExitCode::FAILURE);
            }
            return Err(e);
        }
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if report.ok {
        println!("{}", report.message);
        println!(
            "{} rows read in {secs:.2} s ({:.0} rows/s). Dataset: {} (/d/{})",
            report.rows_read,
            report.rows_read as f64 / secs.max(1e-9),
            pending.dataset_name,
            report.dataset_slug
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}", report.message);
        for e in &report.errors {
            if e.column.is_empty() {
                eprintln!("  line {}: {}", e.line, e.reason);
            } else {
                eprintln!("  line {}, column {}: {}", e.line, e.column, e.reason);
            }
        }
        if report.error_count > report.errors.len() as i64 {
            eprintln!(
                "  … and {} more",
                report.error_count - report.errors.len() as i64
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

async fn export(database_url: &str, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let db = connect(database_url).await?;
    let Some(dataset) = datasets::by_name_or_slug(&db, &args.dataset).await? else {
        eprintln!("error: there is no dataset \"{}\"", args.dataset);
        return Ok(ExitCode::FAILURE);
    };
    // The command line exports everyone's annotations, or one annotator's.
    let scope = match &args.annotator {
        Some(email) => match users::by_email(&db, email).await? {
            Some(u) => Scope::own(dataset.id, u.id),
            None => {
                eprintln!("error: no annotator with email {email}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => Scope::command_line(dataset.id),
    };
    let options = ExportOptions {
        format: args.format,
        scope,
        include_unannotated: args.all_traces,
        raw: args.raw,
    };
    let mut exporter = Exporter::new(db, &dataset, options);
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    while let Some(chunk) = exporter.next_chunk().await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    eprintln!("exported {} rows", exporter.rows_written);
    Ok(ExitCode::SUCCESS)
}

async fn admin(database_url: &str, action: AdminAction) -> anyhow::Result<ExitCode> {
    let db = connect(database_url).await?;
    match action {
        AdminAction::Grant { email } => grant_admin(&db, &email).await,
        AdminAction::Revoke { email } => revoke_admin(&db, &email).await,
        AdminAction::List => {
            for u in users::admins(&db).await? {
                let verified = if u.email_verified() {
                    "verified"
                } else {
                    "unverified"
                };
                println!("{}\t{}\t{}\t{verified}", u.email, u.name, u.issuer);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Grants admin to the identities with this email whose provider verified it. An email the
/// provider did not vouch for could have been typed by anyone at a self-service sign-up, so
/// it is refused, saying so.
async fn grant_admin(db: &Db, email: &str) -> anyhow::Result<ExitCode> {
    let found = users::all_by_email(db, email).await?;
    if found.is_empty() {
        eprintln!("{}", not_signed_in(email));
        return Ok(ExitCode::FAILURE);
    }
    let (verified, unverified): (Vec<_>, Vec<_>) = found.iter().partition(|u| u.email_verified());
    for u in &unverified {
        eprintln!(
            "{}: {} did not mark {email} as verified when {} last signed in, so the address \
             cannot be trusted to name an admin. Verify the email at the identity provider and \
             ask them to sign in again.",
            if verified.is_empty() {
                "error"
            } else {
                "skipped"
            },
            u.issuer,
            u.name
        );
    }
    if verified.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    users::grant_admin_by_verified_email(db, email).await?;
    println!("granted admin to {email}");
    Ok(ExitCode::SUCCESS)
}

async fn revoke_admin(db: &Db, email: &str) -> anyhow::Result<ExitCode> {
    if users::revoke_admin_by_email(db, email).await? == 0 {
        eprintln!("{}", not_signed_in(email));
        return Ok(ExitCode::FAILURE);
    }
    println!("revoked admin from {email}");
    Ok(ExitCode::SUCCESS)
}

fn not_signed_in(email: &str) -> String {
    format!(
        "error: no user with email {email} has signed in yet. Ask them to sign in once, or add \
         the email to ADMIN_EMAILS."
    )
}
