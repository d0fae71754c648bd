//! The dashboard: datasets with this annotator's progress.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::auth::CurrentUser;
use crate::db::datasets::{self, DatasetSummary};
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::pages::Nav;

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    nav: Option<Nav>,
    is_admin: bool,
    datasets: Vec<DatasetSummary>,
}

impl DashboardPage {
    /// How many datasets are archived (admins find them under "Archived").
    pub fn archived_count(&self) -> usize {
        self.datasets
            .iter()
            .filter(|d| d.archived_at.is_some())
            .count()
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

async fn dashboard(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<DashboardPage> {
    let datasets = datasets::summaries(&state.db, user.id).await?;
    Ok(DashboardPage {
        nav: Nav::of(&user),
        is_admin: user.admin(),
        datasets,
    })
}
