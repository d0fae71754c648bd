//! The team-review commands: `tracecoder assign` and `tracecoder reference`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::db::{Db, assignments, datasets};
use crate::domain::assignment::parse_emails;
use crate::review;

#[derive(Args, Debug)]
pub struct AssignArgs {
    /// Dataset name or slug.
    #[arg(long)]
    pub dataset: String,
    /// The annotators, by email (comma separated). They may not have signed in yet.
    #[arg(long, required_unless_present = "clear")]
    pub annotators: Option<String>,
    /// Traces every annotator codes (spread evenly over the dataset).
    #[arg(long, default_value_t = 0)]
    pub shared: u64,
    /// Annotators per trace outside the shared sample.
    #[arg(long, default_value_t = 1)]
    pub per_trace: usize,
    /// Remove the dataset's assignment instead.
    #[arg(long, conflicts_with_all = ["annotators", "shared", "per_trace"])]
    pub clear: bool,
}

#[derive(Args, Debug)]
pub struct ReferenceArgs {
    /// Dataset name or slug.
    #[arg(long)]
    pub dataset: String,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write cells exactly as stored (no `'` before formula-like cells).
    #[arg(long)]
    pub raw: bool,
}

/// `tracecoder assign`: makes (replacing) or clears a dataset's assignment.
pub async fn assign(db: &Db, args: AssignArgs) -> anyhow::Result<ExitCode> {
    let Some(dataset) = datasets::by_name_or_slug(db, &args.dataset).await? else {
        eprintln!("error: there is no dataset \"{}\"", args.dataset);
        return Ok(ExitCode::FAILURE);
    };
    if args.clear {
        if assignments::clear(db, dataset.id).await? {
            println!("removed the assignment of {}", dataset.name);
        } else {
            println!("{} had no assignment", dataset.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let emails = match parse_emails(args.annotators.as_deref().unwrap_or("")) {
        Ok(e) => e,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let dealt = assignments::replace(
        db,
        dataset.id,
        &emails,
        args.shared,
        args.per_trace,
        "command line",
    )
    .await?;
    println!(
        "assigned {}: {} shared traces to all {} annotators, {} others to {} each",
        dataset.name,
        dealt.shared,
        emails.len(),
        dealt.dealt,
        args.per_trace.clamp(1, emails.len())
    );
    Ok(ExitCode::SUCCESS)
}

/// `tracecoder reference`: the reference labels as CSV.
pub async fn reference(db: &Db, args: ReferenceArgs) -> anyhow::Result<ExitCode> {
    let Some(dataset) = datasets::by_name_or_slug(db, &args.dataset).await? else {
        eprintln!("error: there is no dataset \"{}\"", args.dataset);
        return Ok(ExitCode::FAILURE);
    };
    let labels = review::reference_labels(db, dataset.id).await?;
    let csv = review::reference_csv(&labels, args.raw)?;
    match &args.out {
        Some(path) => std::fs::write(path, &csv)?,
        None => std::io::stdout().lock().write_all(&csv)?,
    }
    eprintln!("{} reference labels", labels.len());
    Ok(ExitCode::SUCCESS)
}
