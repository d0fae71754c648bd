//! Team review for leads (admins): the team page (assignment, blindness, progress), the
//! agreement report, the disagreements and their adjudication, the reference labels; and
//! every person's history of a trace.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::db::assignments::{self, AssignmentInfo, MemberProgress};
use crate::db::review::{self as stored, Adjudication, Revision};
use crate::db::{datasets, traces};
use crate::domain::Verdict;
use crate::domain::assignment::parse_emails;
use crate::error::AppResult;
use crate::review::{self, Agreement, CodedTrace, Disagreement};
use crate::state::AppState;
use crate::web::extract::{InDataset, OnTrace};
use crate::web::htmx::Htmx;
use crate::web::pages::Nav;
use crate::web::{render, urls};

/// Routes for leads only (the router is guarded by `RequireAdmin` in `web`).
pub fn lead_router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/team", get(team))
        .route("/d/{slug}/assignment", post(assign))
        .route("/d/{slug}/assignment/clear", post(clear_assignment))
        .route("/d/{slug}/blind", post(set_blind))
        .route("/d/{slug}/agreement", get(agreement_page))
        .route("/d/{slug}/agreement.json", get(agreement_json))
        .route("/d/{slug}/review", get(review_list))
        .route("/d/{slug}/review/{trace_id}", get(review_trace))
        .route("/d/{slug}/t/{trace_id}/adjudicate", post(adjudicate))
        .route("/d/{slug}/reference.csv", get(reference_csv))
}

/// Routes for everyone signed in.
pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/t/{trace_id}/history", get(history))
}

// ---------------------------------------------------------------------------------------
// The team page: the assignment, blind coding, progress.
// ---------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "team.html")]
pub struct TeamPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    trace_count: i64,
    assignment: Option<AssignmentInfo>,
    members: Vec<MemberProgress>,
    totals: Totals,
    blind_admins: bool,
    form: AssignForm,
    error: Option<String>,
    flash: Option<String>,
}

/// The dataset's totals over every person's annotations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub annotations: i64,
    pub passes: i64,
    pub fails: i64,
}

impl Totals {
    fn of(members: &[MemberProgress]) -> Totals {
        members.iter().fold(Totals::default(), |t, m| Totals {
            annotations: t.annotations + m.done(),
            passes: t.passes + m.passes,
            fails: t.fails + m.fails,
        })
    }
}

impl TeamPage {
    /// A member's pass rate, in whole percent.
    pub fn pass_rate(m: &MemberProgress) -> Option<i64> {
        (m.done() > 0).then(|| m.passes * 100 / m.done())
    }

    /// A median time per trace, for people.
    pub fn median(m: &MemberProgress) -> String {
        match m.median_seconds {
            Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
            Some(s) => format!("{s:.0} s"),
            None => "—".to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    annotators: String,
    #[serde(default)]
    shared: String,
    #[serde(default)]
    per_trace: String,
}

async fn team_page(
    state: &AppState,
    at: &InDataset,
    form: AssignForm,
    error: Option<String>,
    flash: Option<String>,
) -> AppResult<TeamPage> {
    let assignment = assignments::get(&state.db, at.dataset.id).await?;
    let members = assignments::team_progress(&state.db, at.dataset.id).await?;
    let form = match (&assignment, form.annotators.is_empty()) {
        (Some(a), true) => AssignForm {
            annotators: a
                .assignees
                .iter()
                .map(|s| s.email.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            shared: a.shared.to_string(),
            per_trace: a.per_trace.to_string(),
        },
        _ => form,
    };
    Ok(TeamPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name.clone(),
        ds_slug: at.dataset.slug.clone(),
        trace_count: at.dataset.trace_count,
        totals: Totals::of(&members),
        assignment,
        members,
        blind_admins: at.dataset.blind_admins,
        form,
        error,
        flash,
    })
}

async fn team(State(state): State<AppState>, at: InDataset) -> AppResult<TeamPage> {
    team_page(&state, &at, AssignForm::default(), None, None).await
}

/// A whole number from a form field; empty is `default`.
fn number(raw: &str, default: u64, what: &str) -> Result<u64, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    raw.parse()
        .map_err(|_| format!("{what} must be a whole number (0 or more)."))
}

async fn assign(
    State(state): State<AppState>,
    at: InDataset,
    Form(form): Form<AssignForm>,
) -> AppResult<Response> {
    let parsed = parse_emails(&form.annotators).and_then(|emails| {
        let shared = number(&form.shared, 0, "The shared traces")?;
        let per_trace = number(&form.per_trace, 1, "Annotators per trace")?;
        Ok((emails, shared, per_trace as usize))
    });
    let (emails, shared, per_trace) = match parsed {
        Ok(p) => p,
        Err(message) => {
            let page = team_page(&state, &at, form, Some(message), None).await?;
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let dealt = assignments::replace(
        &state.db,
        at.dataset.id,
        &emails,
        shared,
        per_trace,
        &at.user.email,
    )
    .await?;
    let flash = format!(
        "Assigned: {} shared traces to all {} annotators, {} others to {} each.",
        dealt.shared,
        emails.len(),
        dealt.dealt,
        per_trace.clamp(1, emails.len())
    );
    let page = team_page(&state, &at, AssignForm::default(), None, Some(flash)).await?;
    Ok(page.into_response())
}

async fn clear_assignment(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    assignments::clear(&state.db, at.dataset.id).await?;
    Ok(Redirect::to(&format!("/d/{}/team", at.dataset.slug)).into_response())
}

#[derive(Deserialize)]
pub struct BlindForm {
    /// Present (any value) to keep admins blind.
    blind: Option<String>,
}

async fn set_blind(
    State(state): State<AppState>,
    at: InDataset,
    Form(form): Form<BlindForm>,
) -> AppResult<Response> {
    datasets::set_blind_admins(&state.db, at.dataset.id, form.blind.is_some()).await?;
    Ok(Redirect::to(&format!("/d/{}/team", at.dataset.slug)).into_response())
}

// ---------------------------------------------------------------------------------------
// Agreement.
// ---------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "agreement.html")]
pub struct AgreementPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    a: Agreement,
}

impl AgreementPage {
    /// A statistic for people: three decimals, or a dash when undefined.
    pub fn fmt(value: &Option<f64>) -> String {
        value.map_or("—".to_string(), |v| format!("{v:.3}"))
    }

    /// A share as a percentage.
    pub fn pct(value: &Option<f64>) -> String {
        value.map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0))
    }

    /// A 95% interval, or a dash.
    pub fn ci(interval: &Option<crate::domain::agreement::BootstrapInterval>) -> String {
        interval.map_or("—".to_string(), |i| {
            format!("{:.3} – {:.3}", i.interval.low, i.interval.high)
        })
    }

    pub fn reading(value: &Option<f64>) -> &'static str {
        Agreement::reading(*value)
    }

    /// The pair matrix: annotators' emails, and the Cohen's kappa of each pair (row, column).
    pub fn matrix(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut people: Vec<String> = self
            .a
            .report
            .verdict
            .pairs
            .iter()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect();
        people.sort();
        people.dedup();
        let cell = |x: &str, y: &str| {
            if x == y {
                return "·".to_string();
            }
            self.a
                .report
                .verdict
                .pairs
                .iter()
                .find(|p| (p.a == x && p.b == y) || (p.a == y && p.b == x))
                .map_or("—".to_string(), |p| {
                    format!("{} ({})", Self::fmt(&p.cohen_kappa), p.items)
                })
        };
        let rows = people
            .iter()
            .map(|x| people.iter().map(|y| cell(x, y)).collect())
            .collect();
        (people, rows)
    }
}

async fn agreement_page(State(state): State<AppState>, at: InDataset) -> AppResult<AgreementPage> {
    let a = review::agreement(&state.db, at.dataset.id).await?;
    Ok(AgreementPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        a,
    })
}

async fn agreement_json(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    let a = review::agreement(&state.db, at.dataset.id).await?;
    Ok(axum::Json(a.report).into_response())
}

// ---------------------------------------------------------------------------------------
// Disagreements and adjudication.
// ---------------------------------------------------------------------------------------

/// Disagreements per list page.
const REVIEW_PAGE: usize = 20;

#[derive(Template, WebTemplate)]
#[template(path = "review_list.html")]
pub struct ReviewListPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    items: Vec<Disagreement>,
    settled: bool,
    next_after: Option<i64>,
}

impl ReviewListPage {
    pub fn review_url(&self, trace_id: &str) -> String {
        format!(
            "/d/{}/review/{}",
            self.ds_slug,
            urls::path_segment(trace_id)
        )
    }
}

#[derive(Deserialize)]
pub struct ReviewQuery {
    after: Option<i64>,
    /// `1` to list settled disagreements too.
    settled: Option<String>,
}

async fn review_list(
    State(state): State<AppState>,
    at: InDataset,
    Query(q): Query<ReviewQuery>,
) -> AppResult<ReviewListPage> {
    let settled = q.settled.as_deref() == Some("1");
    let (items, more) = review::disagreements(
        &state.db,
        at.dataset.id,
        q.after.unwrap_or(0),
        REVIEW_PAGE,
        settled,
    )
    .await?;
    Ok(ReviewListPage {
        nav: Nav::of(&at.user),
        next_after: more
            .then(|| items.last().map(|d| d.coded.sort_key.0))
            .flatten(),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        items,
        settled,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "review_trace.html", blocks = ["main"])]
pub struct ReviewTracePage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    trace: traces::Trace,
    coded: CodedTrace,
    decisions: Vec<Adjudication>,
    next_url: Option<String>,
    form: AdjudicateForm,
    error: Option<String>,
    flash: Option<String>,
}

impl ReviewTracePage {
    pub fn modes_of(&self, i: &usize) -> String {
        self.coded.modes[*i]
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn adjudicate_url(&self) -> String {
        format!(
            "{}/adjudicate",
            urls::trace(&self.ds_slug, &self.trace.trace_id)
        )
    }
}

async fn review_page(
    state: &AppState,
    at: OnTrace,
    form: AdjudicateForm,
    error: Option<String>,
    flash: Option<String>,
) -> AppResult<ReviewTracePage> {
    let modes = review::Modes::load(&state.db, at.dataset.id).await?;
    let coded = stored::coded_trace(&state.db, at.trace.id).await?;
    let coded = CodedTrace {
        trace: at.trace.id,
        trace_id: at.trace.trace_id.clone(),
        sort_key: at.trace.sort_key,
        modes: coded
            .iter()
            .map(|c| {
                modes
                    .of_annotation
                    .get(&c.annotation_id)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect(),
        coded,
    };
    let decisions = stored::adjudications_of(&state.db, at.trace.id).await?;
    let next = review::next_open(&state.db, at.dataset.id, at.trace.sort_key.0).await?;
    let next_url = next.filter(|d| d.coded.trace != at.trace.id).map(|d| {
        format!(
            "/d/{}/review/{}",
            at.dataset.slug,
            urls::path_segment(&d.coded.trace_id)
        )
    });
    Ok(ReviewTracePage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        trace: at.trace,
        coded,
        decisions,
        next_url,
        form,
        error,
        flash,
    })
}

async fn review_trace(
    State(state): State<AppState>,
    htmx: Htmx,
    at: OnTrace,
) -> AppResult<Response> {
    let page = review_page(&state, at, AdjudicateForm::default(), None, None).await?;
    Ok(if htmx.fragment {
        render(&page.as_main())
    } else {
        page.into_response()
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct AdjudicateForm {
    #[serde(default)]
    verdict: String,
    /// Failure mode names, comma separated.
    #[serde(default)]
    failure_modes: String,
    #[serde(default)]
    reason: String,
}

impl AdjudicateForm {
    /// The decision, or what is wrong with the form.
    fn parse(&self, known: &[String]) -> Result<(Verdict, Vec<String>, String), String> {
        let verdict = Verdict::parse(&self.verdict).ok_or("Choose Pass or Fail.")?;
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err("Say why: the reason is kept with the decision.".into());
        }
        if reason.chars().count() > crate::domain::annotation::MAX_TEXT_CHARS {
            return Err("The reason is too long.".into());
        }
        let mut modes: Vec<String> = Vec::new();
        for name in self.failure_modes.split(',') {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            if name.is_empty() {
                continue;
            }
            let Some(found) = known.iter().find(|k| k.eq_ignore_ascii_case(&name)) else {
                return Err(format!(
                    "There is no failure mode \"{name}\" in the codebook."
                ));
            };
            if !modes.contains(found) {
                modes.push(found.clone());
            }
        }
        modes.sort();
        Ok((verdict, modes, reason.to_string()))
    }
}

async fn adjudicate(
    State(state): State<AppState>,
    htmx: Htmx,
    at: OnTrace,
    Form(form): Form<AdjudicateForm>,
) -> AppResult<Response> {
    let modes = review::Modes::load(&state.db, at.dataset.id).await?;
    let (verdict, failure_modes, reason) = match form.parse(&modes.names) {
        Ok(decision) => decision,
        Err(message) => {
            let page = review_page(&state, at, form, Some(message), None).await?;
            let body = if htmx.fragment {
                render(&page.as_main())
            } else {
                page.into_response()
            };
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
        }
    };
    stored::adjudicate(
        &state.db,
        at.dataset.id,
        at.trace.id,
        at.user.id,
        verdict,
        &failure_modes,
        &reason,
    )
    .await?;
    // Save and next: the following open disagreement, or this trace with its decision.
    let next = review::next_open(&state.db, at.dataset.id, at.trace.sort_key.0).await?;
    let url = match next {
        Some(d) => format!(
            "/d/{}/review/{}",
            at.dataset.slug,
            urls::path_segment(&d.coded.trace_id)
        ),
        None => format!("/d/{}/review?settled=1", at.dataset.slug),
    };
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize)]
pub struct RawQuery {
    raw: Option<String>,
}

async fn reference_csv(
    State(state): State<AppState>,
    at: InDataset,
    Query(q): Query<RawQuery>,
) -> AppResult<Response> {
    let labels = review::reference_labels(&state.db, at.dataset.id).await?;
    let raw = q.raw.as_deref().is_some_and(|v| v == "1" || v == "true");
    let body = review::reference_csv(&labels, raw)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-reference.csv\"", at.dataset.slug),
            ),
        ],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// History of a trace.
// ---------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "history.html")]
pub struct HistoryPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    trace_id: String,
    trace_url: String,
    revisions: Vec<Revision>,
    decisions: Vec<Adjudication>,
}

impl HistoryPage {
    pub fn when(secs: &i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(*secs)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| secs.to_string())
    }
}

async fn history(State(state): State<AppState>, at: OnTrace) -> AppResult<HistoryPage> {
    let revisions = stored::revisions_of(&state.db, &at.scope, at.trace.id).await?;
    // The decisions are the reference labels: leads only.
    let decisions = if at.user.admin() {
        stored::adjudications_of(&state.db, at.trace.id).await?
    } else {
        Vec::new()
    };
    Ok(HistoryPage {
        nav: Nav::of(&at.user),
        trace_url: urls::trace(&at.dataset.slug, &at.trace.trace_id),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        trace_id: at.trace.trace_id,
        revisions,
        decisions,
    })
}
