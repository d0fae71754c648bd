//! The shared application state handed to every handler.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::oidc::OidcClient;
use crate::config::Config;
use crate::db::Db;
use crate::import::tasks::ImportTasks;
use crate::web::security::AccountLimiter;

/// Cheap to clone: one `Arc` around everything instances share. It holds no per-user
/// state, so any instance can serve any request.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

/// What the handlers need.
pub struct App {
    /// Query layer over SQLite or Postgres.
    pub db: Db,
    /// Validated configuration.
    pub config: Config,
    /// The discovered OIDC provider, when sign-in is OIDC.
    pub oidc: Option<OidcClient>,
    /// Where uploads are spooled before they are imported.
    pub upload_dir: PathBuf,
    /// Renders `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Redis pool for sessions, kept for `/readyz`.
    pub redis: Option<tower_sessions_redis_store::fred::prelude::Pool>,
    /// Imports running in the background, which shutdown waits for (or stops).
    pub imports: ImportTasks,
    /// Sign-in attempts per account (the per-IP limit is a router layer).
    pub login_accounts: Arc<AccountLimiter>,
    /// The trace list's metadata filter hints, per dataset.
    pub metadata_hints: crate::db::trace_search::MetadataCache,
    /// The codebook's counts per dataset, kept between views.
    pub codebook_counts: crate::codebook_cache::OverviewCache,
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}
