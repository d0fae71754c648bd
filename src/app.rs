//! Building and running the server: the same `Application` for the binary and the tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::oidc::OidcClient;
use crate::auth::sessions;
use crate::config::Config;
use crate::db::Db;
use crate::import::tasks::ImportTasks;
use crate::server;
use crate::state::{App, AppState};
use crate::web::security::{AccountLimiter, Site};

/// How long start-up waits for an unreachable database or Redis.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(60);

/// A bound, ready-to-serve application.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// `/metrics` on its own address (`METRICS_BIND`).
    metrics: Option<(TcpListener, axum::Router)>,
    limits: server::Limits,
    state: AppState,
}

impl Application {
    /// Validates the config, connects (waiting for the database), migrates, discovers OIDC,
    /// loads the demo when asked, and binds (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        let db = Db::connect(&config.database_url, DEPENDENCY_WAIT).await?;
        let (store, redis) = sessions::build(&config, &db, DEPENDENCY_WAIT).await?;
        let oidc = match &config.oidc {
            Some(settings) => Some(OidcClient::discover(&config, settings).await?),
            None => None,
        };
        // Traces an interrupted run left unassigned in an assigned dataset are dealt now.
        let dealt = crate::db::assignments::assign_all_pending(&db).await?;
        if dealt > 0 {
            tracing::info!(traces = dealt, "assigned traces left unassigned");
        }
        if config.demo {
            crate::demo::load_if_empty(&db).await?;
        }
        let upload_dir = std::env::temp_dir().join("tracecoder-uploads");
        std::fs::create_dir_all(&upload_dir)
            .with_context(|| format!("creating {}", upload_dir.display()))?;
        let (_, handle) = crate::web::metrics();
        let imports = ImportTasks::default();
        // Before serving: an import left "running" by a process that died is failed and
        // cleaned up now, not minutes later.
        imports
            .start_reaper(db.clone(), config.import_stale_after)
            .await;
        let state = AppState(Arc::new(App {
            db,
            config: config.clone(),
            oidc,
            upload_dir,
            metrics: Some(handle.clone()),
            redis,
            imports,
            login_accounts: AccountLimiter::new(
                config.login_account_burst,
                config.rate_limit_period,
            ),
            metadata_hints: Default::default(),
            codebook_counts: crate::codebook_cache::OverviewCache::new(
                config.codebook_recount_budget,
            ),
        }));
        let limits = connection_limits(&config);
        // Bound first: without PUBLIC_URL the names the app answers to carry the bound port.
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let site = Site::new(&config, listener.local_addr()?);
        let router = crate::web::router(state.clone(), store, site)?;
        let metrics = match config.metrics_bind {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on METRICS_BIND {addr}"))?;
                Some((listener, crate::web::metrics_router(state.clone())))
            }
            None => None,
        };
        Ok(Application {
            listener,
            router,
            metrics,
            limits,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when it has its own address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish, then lets
    /// running imports finish within the grace period (and stops the rest cleanly).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let shutdown = futures_util::FutureExt::shared(shutdown);
        let (metrics_listener, limits, stop_metrics) =
            (self.metrics, self.limits, shutdown.clone());
        let metrics = async move {
            if let Some((listener, router)) = metrics_listener {
                let addr = listener.local_addr()?;
                tracing::info!(%addr, "serving /metrics");
                let limits = server::Limits {
                    max_connections: METRICS_CONNECTIONS,
                    ..limits
                };
                server::serve(listener, router, limits, stop_metrics).await;
            }
            Ok::<_, std::io::Error>(())
        };
        tracing::info!(
            %addr,
            max_connections = self.limits.max_connections,
            header_read_timeout_s = self.limits.header_read_timeout.as_secs(),
            "listening"
        );
        crate::memory::release_when_idle();
        let main = server::serve(self.listener, self.router, self.limits, shutdown);
        let ((), metrics) = tokio::join!(main, metrics);
        metrics?;
        self.state
            .imports
            .shutdown(self.state.config.import_grace)
            .await;
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Connections the metrics address serves at once (a scraper or two).
const METRICS_CONNECTIONS: usize = 64;

/// The connection limits, with the cap lowered to fit under the open-file limit (raised to
/// its hard maximum first).
fn connection_limits(config: &Config) -> server::Limits {
    let open_files = server::raise_open_file_limit();
    let cap = server::connection_cap(config.max_connections, open_files);
    if cap < config.max_connections {
        tracing::warn!(
            configured = config.max_connections,
            used = cap,
            open_file_limit = open_files,
            "MAX_CONNECTIONS lowered to fit the open-file limit (raise LimitNOFILE / ulimit -n)"
        );
    }
    server::Limits {
        max_connections: cap,
        header_read_timeout: config.header_read_timeout,
        response_stall_timeout: config.response_stall_timeout,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, saying so in the log.
pub async fn shutdown_signal() {
    stop_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
