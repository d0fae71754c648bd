//! The team-review and judge commands: `tracecoder assign`, `tracecoder reference` and
//! `tracecoder judge import`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::db::{Db, assignments, datasets};
use crate::domain::assignment::parse_emails;
use crate::{judges, review};

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

#[derive(Subcommand, Debug)]
pub enum JudgeAction {
    /// Import a judge's verdicts (CSV with trace_id, verdict, optional failure_modes) as a
    /// new version of that judge; all or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Dataset name or slug.
        #[arg(long)]
        dataset: String,
        /// The judge's name (importing it again makes a new version).
        #[arg(long)]
        judge: String,
    },
}

/// `tracecoder judge …`.
pub async fn judge(db: &Db, action: JudgeAction) -> anyhow::Result<ExitCode> {
    let JudgeAction::Import {
        file,
        dataset,
        judge,
    } = action;
    let Some(ds) = datasets::by_name_or_slug(db, &dataset).await? else {
        eprintln!("error: there is no dataset \"{dataset}\"");
        return Ok(ExitCode::FAILURE);
    };
    let reader = match std::fs::File::open(&file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match judges::import(db, ds.id, &judge, &name, "command line", reader).await? {
        Ok(run) => {
            println!(
                "imported {} verdicts of {} (version {}) into {}",
                run.judged, run.judge, run.version, ds.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => {
            eprintln!("{}", refusal.message);
            for e in &refusal.errors {
                if e.column.is_empty() {
                    eprintln!("  line {}: {}", e.line, e.reason);
                } else {
                    eprintln!("  line {}, column {}: {}", e.line, e.column, e.reason);
                }
            }
            if refusal.error_count > refusal.errors.len() {
                eprintln!(
                    "  … and {} more",
                    refusal.error_count - refusal.errors.len()
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
