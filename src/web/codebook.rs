//! The codebook pages for leads (admins): codes counted and grouped into failure modes
//! (`/d/{dataset}/codebook`), its export (`.csv`, `.json`), import, history, the lazy
//! saturation and suggestion sections; and, for everyone, the codes offered while
//! annotating (`/d/{dataset}/codes.json`).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, RawForm, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::codebook::{self, CodeRow, ModeRow, Overview, Suggestion};
use crate::codebook_cache::{Need, View};
use crate::db::codebook::{self as store, Change, Edit, ExampleNote, Refused};
use crate::domain::code_clusters::Cluster;
use crate::domain::codebook::{FileProblem, ParetoBar, pareto, parse_description, parse_mode_name};
use crate::domain::saturation::Block;
use crate::domain::{ModeId, annotation::normalize_code};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::extract::InDataset;
use crate::web::htmx::Htmx;
use crate::web::pages::Nav;
use crate::web::urls;

/// Largest codebook file accepted through the form.
const MAX_CODEBOOK_FILE: usize = 8 * 1024 * 1024;
/// Codes listed on the page at once; a search narrows the rest.
const CODES_SHOWN: usize = 300;
/// The saturation curve aims at this many blocks: a block is a twentieth of the
/// annotations, at least 10 and at most 500 annotations.
const SATURATION_BLOCKS: usize = 20;
const SATURATION_BLOCK_RANGE: (usize, usize) = (10, 500);

/// Leads only (guarded by `RequireAdmin` in `web`).
pub fn lead_router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/codebook", get(page))
        .route("/d/{slug}/codebook.csv", get(export_csv))
        .route("/d/{slug}/codebook.json", get(export_json))
        .route("/d/{slug}/codebook/modes", post(create_mode))
        .route("/d/{slug}/codebook/modes/{mode}", post(update_mode))
        .route(
            "/d/{slug}/codebook/modes/{mode}/archive",
            post(archive_mode),
        )
        .route(
            "/d/{slug}/codebook/modes/{mode}/restore",
            post(restore_mode),
        )
        .route("/d/{slug}/codebook/modes/{mode}/merge", post(merge_mode))
        .route("/d/{slug}/codebook/group", post(group_codes))
        .route(
            "/d/{slug}/codebook/suggestions",
            get(suggestions).post(accept_or_dismiss),
        )
        .route("/d/{slug}/codebook/saturation", get(saturation))
        .route("/d/{slug}/codebook/notes", get(notes))
        .route("/d/{slug}/codebook/history", get(history))
        .route("/d/{slug}/codebook/import", post(import))
        .layer(DefaultBodyLimit::max(MAX_CODEBOOK_FILE))
}

/// Everyone signed in with access to the dataset.
pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/codes.json", get(codes_json))
}

fn codebook_url(slug: &str) -> String {
    format!("/d/{slug}/codebook")
}

/// Percent-encodes a query value.
fn q(value: &str) -> String {
    urls::path_segment(value)
}

/// The chart's plot area, in SVG user units.
const CHART_W: f64 = 640.0;
const CHART_H: f64 = 200.0;

#[derive(Template, WebTemplate)]
#[template(path = "codebook.html")]
pub struct CodebookPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    overview: Arc<Overview>,
    /// When the counts are not the database's: how old they are and what they miss.
    as_of: Option<CountsAsOf>,
    /// The codes listed (after the search), with their shown spelling.
    shown: Vec<(CodeRow, String)>,
    matching: usize,
    search: String,
    bars: Vec<ParetoBar>,
    notice: Option<Notice>,
    problems: Vec<FileProblem>,
}

/// Counts shown as last computed while annotators save (see `codebook_cache`).
pub struct CountsAsOf {
    seconds_ago: i64,
    changes_since: i64,
}

impl CountsAsOf {
    fn of(view: &View) -> Option<CountsAsOf> {
        (view.changes_since > 0).then(|| CountsAsOf {
            seconds_ago: (crate::db::now() - view.counted.computed_unix).max(0),
            changes_since: view.changes_since,
        })
    }
}

/// A message above the page: what a change did, or why it was refused.
pub struct Notice {
    text: String,
    error: bool,
}

impl Notice {
    fn ok(text: String) -> Option<Notice> {
        Some(Notice { text, error: false })
    }
    fn error(text: String) -> Option<Notice> {
        Some(Notice { text, error: true })
    }
}

impl CodebookPage {
    pub fn traces_url(&self, code: &str) -> String {
        format!("/d/{}/traces?code={}", self.ds_slug, q(code))
    }
    pub fn fail_traces_url(&self, code: &str) -> String {
        format!("/d/{}/traces?code={}&verdict=fail", self.ds_slug, q(code))
    }
    pub fn mode_url(&self, m: &ModeRow) -> String {
        format!(
            "/d/{}/traces?mode={}&verdict=fail",
            self.ds_slug,
            q(&m.mode.name)
        )
    }
    pub fn notes_url(&self, code: &str) -> String {
        format!("/d/{}/codebook/notes?code={}", self.ds_slug, q(code))
    }
    pub fn mode_name(&self, id: &Option<ModeId>) -> String {
        let Some(id) = id else { return String::new() };
        self.overview
            .modes
            .iter()
            .chain(&self.overview.archived)
            .find(|m| m.mode.id == *id)
            .map(|m| m.mode.name.clone())
            .unwrap_or_default()
    }
    pub fn pct(value: &Option<f64>) -> String {
        value.map_or("—".into(), |v| format!("{:.1}%", v * 100.0))
    }
    /// A bar's label, shortened to fit under it.
    pub fn short(label: &str) -> String {
        let max = 14;
        if label.chars().count() <= max {
            label.to_string()
        } else {
            format!("{}…", label.chars().take(max - 1).collect::<String>())
        }
    }
    pub fn line_points(&self) -> String {
        self.bars
            .iter()
            .map(|b| format!("{:.1},{:.1}", b.x + b.width / 2.0, b.line_y))
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn chart_w(&self) -> f64 {
        CHART_W
    }
    pub fn chart_h(&self) -> f64 {
        CHART_H
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    q: String,
}

async fn render_page(
    state: &AppState,
    at: &InDataset,
    search: String,
    notice: Option<Notice>,
    problems: Vec<FileProblem>,
) -> AppResult<CodebookPage> {
    let view = state
        .codebook_counts
        .get(&state.db, at.dataset.id, Need::Recent)
        .await?;
    let overview = view.overview().clone();
    let needle = normalize_code(&search);
    let matching: Vec<&CodeRow> = overview
        .codes
        .iter()
        .filter(|c| needle.is_empty() || c.counts.code.contains(&needle))
        .collect();
    let listed: Vec<&CodeRow> = matching.iter().take(CODES_SHOWN).copied().collect();
    let keys: Vec<&str> = listed.iter().map(|c| c.counts.code.as_str()).collect();
    let spellings = view
        .counted
        .spellings(&state.db, at.dataset.id, &keys)
        .await?;
    let shown = listed
        .into_iter()
        .map(|c| {
            let spelling = spellings
                .get(&c.counts.code)
                .cloned()
                .unwrap_or_else(|| c.counts.code.clone());
            (c.clone(), spelling)
        })
        .collect();
    let mut items: Vec<(String, u64)> = overview
        .modes
        .iter()
        .map(|m| (m.mode.name.clone(), m.fail_traces as u64))
        .collect();
    if overview.ungrouped.fail_traces > 0 {
        items.push((
            overview.ungrouped.mode.name.clone(),
            overview.ungrouped.fail_traces as u64,
        ));
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.1));
    items.retain(|(_, n)| *n > 0);
    let bars = pareto(&items, overview.totals.fail_traces as u64, CHART_W, CHART_H);
    Ok(CodebookPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name.clone(),
        ds_slug: at.dataset.slug.clone(),
        matching: matching.len(),
        as_of: CountsAsOf::of(&view),
        overview,
        shown,
        search,
        bars,
        notice,
        problems,
    })
}

async fn page(
    State(state): State<AppState>,
    at: InDataset,
    Query(query): Query<PageQuery>,
) -> AppResult<CodebookPage> {
    render_page(&state, &at, query.q, None, Vec::new()).await
}

/// The counts an export writes: always the database's.
async fn exact_overview(state: &AppState, at: &InDataset) -> AppResult<Arc<Overview>> {
    let view = state
        .codebook_counts
        .get(&state.db, at.dataset.id, Need::Exact)
        .await?;
    Ok(view.overview().clone())
}

async fn export_csv(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    let overview = exact_overview(&state, &at).await?;
    let csv = codebook::export_csv(&codebook::export_rows(&overview), false)?;
    let disposition = format!("attachment; filename=\"{}-codebook.csv\"", at.dataset.slug);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

async fn export_json(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    let overview = exact_overview(&state, &at).await?;
    Ok(axum::Json(codebook::export_json(&at.dataset.name, &overview)).into_response())
}

/// After a change: back to the page (303), or the page again with the refusal (409/422).
async fn answer(
    state: &AppState,
    at: &InDataset,
    outcome: Result<Option<ModeId>, Refused>,
) -> AppResult<Response> {
    match outcome {
        Ok(_) => Ok(Redirect::to(&codebook_url(&at.dataset.slug)).into_response()),
        Err(refused) => {
            let status = match refused {
                Refused::NameTaken(_) => StatusCode::CONFLICT,
                Refused::NoSuchMode => StatusCode::NOT_FOUND,
                Refused::Nothing(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let page = render_page(
                state,
                at,
                String::new(),
                Notice::error(refused.message()),
                Vec::new(),
            )
            .await?;
            Ok((status, page).into_response())
        }
    }
}

async fn edit(state: &AppState, at: &InDataset, edit: Edit) -> AppResult<Response> {
    let outcome = store::apply(&state.db, at.dataset.id, &at.user.email, edit).await?;
    answer(state, at, outcome).await
}

/// A refused form field: the page again with the message, 422.
async fn invalid(state: &AppState, at: &InDataset, message: String) -> AppResult<Response> {
    let page = render_page(state, at, String::new(), Notice::error(message), Vec::new()).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Deserialize)]
pub struct ModeForm {
    name: String,
    #[serde(default)]
    description: String,
}

impl ModeForm {
    fn parse(&self) -> Result<(String, String), String> {
        Ok((
            parse_mode_name(&self.name)?,
            parse_description(&self.description)?,
        ))
    }
}

async fn create_mode(
    State(state): State<AppState>,
    at: InDataset,
    axum::Form(form): axum::Form<ModeForm>,
) -> AppResult<Response> {
    match form.parse() {
        Ok((name, description)) => edit(&state, &at, Edit::Create { name, description }).await,
        Err(message) => invalid(&state, &at, message).await,
    }
}

async fn update_mode(
    State(state): State<AppState>,
    at: InDataset,
    Path((_, mode)): Path<(String, i64)>,
    axum::Form(form): axum::Form<ModeForm>,
) -> AppResult<Response> {
    match form.parse() {
        Ok((name, description)) => {
            let change = Edit::Update {
                mode: ModeId(mode),
                name,
                description,
            };
            edit(&state, &at, change).await
        }
        Err(message) => invalid(&state, &at, message).await,
    }
}

async fn archive_mode(
    State(state): State<AppState>,
    at: InDataset,
    Path((_, mode)): Path<(String, i64)>,
) -> AppResult<Response> {
    edit(&state, &at, Edit::Archive(ModeId(mode))).await
}

async fn restore_mode(
    State(state): State<AppState>,
    at: InDataset,
    Path((_, mode)): Path<(String, i64)>,
) -> AppResult<Response> {
    edit(&state, &at, Edit::Restore(ModeId(mode))).await
}

#[derive(Deserialize)]
pub struct MergeForm {
    into: i64,
}

async fn merge_mode(
    State(state): State<AppState>,
    at: InDataset,
    Path((_, mode)): Path<(String, i64)>,
    axum::Form(form): axum::Form<MergeForm>,
) -> AppResult<Response> {
    let change = Edit::Merge {
        from: ModeId(mode),
        into: ModeId(form.into),
    };
    edit(&state, &at, change).await
}

/// A form with repeated `code` fields (checkboxes), read with `form_urlencoded`.
struct CodesForm {
    codes: Vec<String>,
    fields: Vec<(String, String)>,
}

impl CodesForm {
    fn parse(raw: &[u8]) -> CodesForm {
        let mut form = CodesForm {
            codes: Vec::new(),
            fields: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(raw) {
            if key == "code" {
                let code = normalize_code(&value);
                if !code.is_empty() && !form.codes.contains(&code) {
                    form.codes.push(code);
                }
            } else {
                form.fields.push((key.into_owned(), value.into_owned()));
            }
        }
        form
    }

    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Puts the selected codes into a mode (an existing one, or a new one named in the form),
/// or takes them out of their modes.
async fn group_codes(
    State(state): State<AppState>,
    at: InDataset,
    RawForm(raw): RawForm,
) -> AppResult<Response> {
    let form = CodesForm::parse(&raw);
    if form.field("action") == "ungroup" {
        return edit(&state, &at, Edit::Ungroup(form.codes)).await;
    }
    group_into(&state, &at, form).await
}

async fn group_into(state: &AppState, at: &InDataset, form: CodesForm) -> AppResult<Response> {
    if form.codes.is_empty() {
        return invalid(state, at, "Select the codes to group first.".into()).await;
    }
    let mode = match form.field("mode") {
        "" | "new" => {
            let name = match parse_mode_name(form.field("new_mode")) {
                Ok(n) => n,
                Err(m) => return invalid(state, at, m).await,
            };
            let create = Edit::Create {
                name,
                description: String::new(),
            };
            match store::apply(&state.db, at.dataset.id, &at.user.email, create).await? {
                Ok(Some(id)) => id,
                Ok(None) => return invalid(state, at, "The mode was not created.".into()).await,
                Err(refused) => return answer(state, at, Err(refused)).await,
            }
        }
        id => match id.parse() {
            Ok(id) => ModeId(id),
            Err(_) => return invalid(state, at, "Choose a failure mode.".into()).await,
        },
    };
    edit(
        state,
        at,
        Edit::Group {
            codes: form.codes,
            mode,
        },
    )
    .await
}

#[derive(Template, WebTemplate)]
#[template(path = "codebook_suggestions.html")]
pub struct SuggestionsSection {
    ds_slug: String,
    clusters: Vec<Cluster>,
    ungrouped: usize,
    millis: u128,
}

async fn suggestions(
    State(state): State<AppState>,
    at: InDataset,
) -> AppResult<SuggestionsSection> {
    let started = std::time::Instant::now();
    let (clusters, ungrouped) = codebook::suggestions(&state.db, at.dataset.id).await?;
    Ok(SuggestionsSection {
        ds_slug: at.dataset.slug,
        ungrouped,
        clusters,
        millis: started.elapsed().as_millis(),
    })
}

/// A suggested grouping accepted (a new mode with its codes, or into an existing mode) or
/// dismissed, in one action.
async fn accept_or_dismiss(
    State(state): State<AppState>,
    at: InDataset,
    RawForm(raw): RawForm,
) -> AppResult<Response> {
    let form = CodesForm::parse(&raw);
    if form.field("action") == "dismiss" {
        return edit(&state, &at, Edit::Dismiss(form.codes)).await;
    }
    group_into(&state, &at, form).await
}

#[derive(Template, WebTemplate)]
#[template(path = "codebook_saturation.html")]
pub struct SaturationSection {
    blocks: Vec<Block>,
    block: usize,
}

impl SaturationSection {
    /// Points of a polyline over the blocks: x by annotations done, y by `value` in [0, 1].
    fn points(&self, value: impl Fn(&Block) -> f64) -> String {
        let last = self.blocks.last().map_or(1, |b| b.annotations).max(1) as f64;
        self.blocks
            .iter()
            .map(|b| {
                let x = b.annotations as f64 / last * CHART_W;
                let y = CHART_H - value(b).clamp(0.0, 1.0) * CHART_H;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn done(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.annotations)
    }
    pub fn coverage_points(&self) -> String {
        self.points(|b| b.coverage.unwrap_or(0.0))
    }
    pub fn new_code_points(&self) -> String {
        let block = self.block as f64;
        self.points(|b| b.new_codes as f64 / block)
    }
    pub fn pct(value: &Option<f64>) -> String {
        CodebookPage::pct(value)
    }
    pub fn chart_w(&self) -> f64 {
        CHART_W
    }
    pub fn chart_h(&self) -> f64 {
        CHART_H
    }
}

async fn saturation(State(state): State<AppState>, at: InDataset) -> AppResult<SaturationSection> {
    let (blocks, block) = codebook::saturation_curve(
        &state.db,
        at.dataset.id,
        SATURATION_BLOCKS,
        SATURATION_BLOCK_RANGE,
    )
    .await?;
    Ok(SaturationSection { blocks, block })
}

#[derive(Template, WebTemplate)]
#[template(path = "codebook_notes.html", blocks = ["notes"])]
pub struct NotesPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    code: String,
    notes: Vec<ExampleNote>,
}

impl NotesPage {
    pub fn trace_url(&self, trace_id: &str) -> String {
        urls::trace(&self.ds_slug, trace_id)
    }
}

#[derive(Deserialize)]
pub struct NotesQuery {
    code: String,
}

/// A code's example first-failure notes: a page, or its list for HTMX.
async fn notes(
    State(state): State<AppState>,
    at: InDataset,
    htmx: Htmx,
    Query(query): Query<NotesQuery>,
) -> AppResult<Response> {
    let code = normalize_code(&query.code);
    let notes = store::example_notes(&state.db, at.dataset.id, &code, 5).await?;
    let page = NotesPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        code,
        notes,
    };
    Ok(if htmx.fragment {
        crate::web::render(&page.as_notes())
    } else {
        crate::web::render(&page)
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "codebook_history.html")]
pub struct HistoryPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    changes: Vec<Change>,
}

impl HistoryPage {
    pub fn when(at: &i64) -> String {
        crate::web::review::HistoryPage::when(at)
    }
}

async fn history(State(state): State<AppState>, at: InDataset) -> AppResult<HistoryPage> {
    let changes = store::changes(&state.db, at.dataset.id, 500).await?;
    Ok(HistoryPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        changes,
    })
}

/// Imports a codebook CSV from the form, all or nothing.
async fn import(
    State(state): State<AppState>,
    at: InDataset,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let bad_form = |_| {
        AppError::BadRequest(
            "The upload was interrupted or is not a valid form. Please try again.".into(),
        )
    };
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(bad_form)? {
        if field.name() == Some("file") {
            file = Some(field.bytes().await.map_err(bad_form)?);
        }
    }
    let Some(bytes) = file.filter(|b| !b.is_empty()) else {
        return invalid(&state, &at, "Choose the codebook CSV file.".into()).await;
    };
    match codebook::import(&state.db, at.dataset.id, &at.user.email, &bytes).await? {
        Ok(summary) => {
            let page = render_page(
                &state,
                &at,
                String::new(),
                Notice::ok(codebook::import_notice(&summary)),
                Vec::new(),
            )
            .await?;
            Ok(page.into_response())
        }
        Err(problems) => {
            let message = "The codebook was not imported: nothing was changed.".to_string();
            let page =
                render_page(&state, &at, String::new(), Notice::error(message), problems).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(serde::Serialize)]
struct CodesJson {
    suggestions: Vec<Suggestion>,
}

/// The codes offered in the open-codes field (see [`codebook::suggestions_for`]).
async fn codes_json(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    let counted = state
        .codebook_counts
        .get(&state.db, at.dataset.id, Need::Recent)
        .await?;
    let suggestions = codebook::suggestions_for(&state.db, &at.scope, counted.overview()).await?;
    Ok((
        [(header::CACHE_CONTROL, "private, no-store")],
        axum::Json(CodesJson { suggestions }),
    )
        .into_response())
}
