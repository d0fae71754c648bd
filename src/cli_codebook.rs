//! The codebook commands: `tracecoder codebook export` and `tracecoder codebook import`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::codebook;
use crate::db::{Db, datasets};

#[derive(Subcommand, Debug)]
pub enum CodebookAction {
    /// Write a dataset's codebook: per failure mode its open codes with their counts.
    Export {
        /// Dataset name or slug.
        #[arg(long)]
        dataset: String,
        #[arg(long, value_enum, default_value_t = CodebookFormat::Csv)]
        format: CodebookFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a codebook CSV (failure_mode, open_code, optional description): creates the
    /// modes and puts the codes into them; all or nothing, and importing again changes
    /// nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Dataset name or slug.
        #[arg(long)]
        dataset: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodebookFormat {
    Csv,
    Json,
}

/// `tracecoder codebook …`.
pub async fn codebook(db: &Db, action: CodebookAction) -> anyhow::Result<ExitCode> {
    match action {
        CodebookAction::Export {
            dataset,
            format,
            out,
        } => {
            let Some(ds) = datasets::by_name_or_slug(db, &dataset).await? else {
                eprintln!("error: there is no dataset \"{dataset}\"");
                return Ok(ExitCode::FAILURE);
            };
            let overview = codebook::overview(db, ds.id).await?;
            let body = match format {
                CodebookFormat::Csv => {
                    codebook::export_csv(&codebook::export_rows(&overview), false)?
                }
                CodebookFormat::Json => {
                    let mut json =
                        serde_json::to_vec_pretty(&codebook::export_json(&ds.name, &overview))?;
                    json.push(b'\n');
                    json
                }
            };
            match &out {
                Some(path) => std::fs::write(path, &body)?,
                None => std::io::stdout().lock().write_all(&body)?,
            }
            eprintln!(
                "{} failure modes, {} open codes",
                overview.modes.len(),
                overview.codes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        CodebookAction::Import { file, dataset } => {
            let Some(ds) = datasets::by_name_or_slug(db, &dataset).await? else {
                eprintln!("error: there is no dataset \"{dataset}\"");
                return Ok(ExitCode::FAILURE);
            };
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return Ok(ExitCode::from(2));
                }
            };
            match codebook::import(db, ds.id, "command line", &data).await? {
                Ok(summary) => {
                    println!("{}", codebook::import_notice(&summary));
                    Ok(ExitCode::SUCCESS)
                }
                Err(problems) => {
                    eprintln!("The codebook was not imported: nothing was changed.");
                    for p in &problems {
                        if p.line > 0 {
                            eprintln!("  line {}: {}", p.line, p.reason);
                        } else {
                            eprintln!("  {}", p.reason);
                        }
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
