//! Export downloads: streamed as they are produced, scoped to the annotator (or everyone,
//! for admins).

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::AppResult;
use crate::export::{ExportOptions, Exporter, Format};
use crate::state::AppState;
use crate::web::extract::InDataset;

#[derive(Deserialize)]
pub struct ExportQuery {
    /// `1` to include traces without an annotation in scope.
    all: Option<String>,
    /// `1`: CSV cells exactly as stored, without the formula guard (see `export::neutralize`).
    raw: Option<String>,
}

fn flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v == "1" || v == "true")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/d/{slug}/export.csv",
            get(|s, at, q| export(s, at, q, Format::Csv)),
        )
        .route(
            "/d/{slug}/export.jsonl",
            get(|s, at, q| export(s, at, q, Format::Jsonl)),
        )
}

async fn export(
    State(state): State<AppState>,
    at: InDataset,
    Query(q): Query<ExportQuery>,
    format: Format,
) -> AppResult<Response> {
    let InDataset { dataset, scope, .. } = at;
    let options = ExportOptions {
        format,
        scope,
        include_unannotated: flag(q.all.as_deref()),
        raw: flag(q.raw.as_deref()),
    };
    let mut exporter = Exporter::new(state.db.clone(), &dataset, options);
    // Fail before the headers go out if the first page cannot be read.
    let first = exporter.next_chunk().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        if let Some(chunk) = first
            && tx.send(Ok(chunk)).await.is_err()
        {
            return;
        }
        loop {
            match exporter.next_chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return; // the client went away
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = ?e, "export failed midway");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
    });
    let filename = format!("{}-annotations.{}", dataset.slug, format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}
