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
use crate::state::{App, AppState};

/// A bound, ready-to-serve application.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Validates the config, connects (waiting for the database), migrates, discovers OIDC,
    /// loads the demo when asked, and binds (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        let db = Db::connect(&config.database_url, Duration::from_secs(60)).await?;
        let (store, redis) = sessions::build(&config, &db).await?;
        let oidc = match &config.oidc {
            Some(settings) => Some(OidcClient::discover(&config, settings).await?),
            None => None,
        };
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
        }));
        let router = crate::web::router(state.clone(), store)?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
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
        tracing::info!(%addr, "listening");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
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
