//! The codebook's rules without storage: failure mode names, the codebook CSV a team
//! reuses across datasets, and the geometry of the Pareto chart.

use std::collections::{BTreeMap, HashMap};

use super::annotation::normalize_code;

/// Longest failure mode name, in characters.
pub const MAX_MODE_NAME: usize = 80;
/// Longest failure mode description (the rubric), in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// A failure mode name as typed: trimmed, inner whitespace collapsed; 1 to 80 characters,
/// no comma (names are listed comma-separated in exports, judge files and adjudications).
pub fn parse_mode_name(raw: &str) -> Result<String, String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("Give the failure mode a name.".into());
    }
    if name.chars().count() > MAX_MODE_NAME {
        return Err(format!(
            "A failure mode name has at most {MAX_MODE_NAME} characters."
        ));
    }
    if name.contains(',') {
        return Err("A failure mode name cannot contain a comma.".into());
    }
    Ok(name)
}

/// A description as typed: trimmed, at most [`MAX_DESCRIPTION`] characters.
pub fn parse_description(raw: &str) -> Result<String, String> {
    let text = raw.trim().replace("\r\n", "\n");
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(format!(
            "A description has at most {MAX_DESCRIPTION} characters."
        ));
    }
    Ok(text)
}

/// How names are compared: like open codes ("Wrong  Tool" is "wrong tool").
pub fn mode_key(name: &str) -> String {
    normalize_code(name)
}

/// One failure mode of a codebook file, with the codes put in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMode {
    pub name: String,
    /// Empty when the file gives none (an existing description is then kept).
    pub description: String,
    /// Normalized codes, in file order.
    pub codes: Vec<String>,
}

/// A line of a codebook file that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// Reads a codebook CSV: columns `failure_mode`, `open_code` and optionally `description`
/// (any order and case, others ignored). A row with an empty `open_code` declares a mode
/// without codes; a code given to two modes, a bad name or a description that contradicts
/// an earlier one is a problem with its line. All problems are reported; any problem means
/// nothing is imported.
pub fn parse_codebook(data: &[u8]) -> Result<Vec<ImportedMode>, Vec<FileProblem>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let problem = |line: u64, reason: String| vec![FileProblem { line, reason }];
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(problem(1, format!("The file is not readable CSV: {e}"))),
    };
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(mode_col), Some(code_col)) = (column("failure_mode"), column("open_code")) else {
        return Err(problem(
            1,
            "The file needs the columns failure_mode and open_code (and optionally description)."
                .into(),
        ));
    };
    let description_col = column("description");

    let mut modes: Vec<ImportedMode> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut code_owner: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(FileProblem {
                    line,
                    reason: format!("not readable CSV: {e}"),
                });
                continue;
            }
        };
        let cell = |col: usize| record.get(col).unwrap_or("").trim();
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let name = match parse_mode_name(cell(mode_col)) {
            Ok(n) => n,
            Err(reason) => {
                problems.push(FileProblem { line, reason });
                continue;
            }
        };
        let description = match description_col.map(|c| parse_description(cell(c))) {
            Some(Err(reason)) => {
                problems.push(FileProblem { line, reason });
                continue;
            }
            Some(Ok(d)) => d,
            None => String::new(),
        };
        let key = mode_key(&name);
        let at = *by_key.entry(key).or_insert_with(|| {
            modes.push(ImportedMode {
                name: name.clone(),
                description: String::new(),
                codes: Vec::new(),
            });
            modes.len() - 1
        });
        let mode = &mut modes[at];
        if !description.is_empty() {
            if mode.description.is_empty() {
                mode.description = description;
            } else if mode.description != description {
                problems.push(FileProblem {
                    line,
                    reason: format!(
                        "\"{}\" has another description on an earlier line.",
                        mode.name
                    ),
                });
            }
        }
        let code = normalize_code(cell(code_col));
        if code.is_empty() {
            continue;
        }
        match code_owner.get(&code) {
            Some(&(owner, _)) if owner == at => {}
            Some(&(owner, first)) => problems.push(FileProblem {
                line,
                reason: format!(
                    "the code \"{code}\" is already in \"{}\" (line {first}); a code belongs to one failure mode",
                    modes[owner].name
                ),
            }),
            None => {
                code_owner.insert(code.clone(), (at, line));
                modes[at].codes.push(code);
            }
        }
    }
    if problems.is_empty() {
        Ok(modes)
    } else {
        Err(problems)
    }
}

/// One bar of the Pareto chart, in the chart's own units (the SVG's viewBox).
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoBar {
    pub label: String,
    pub count: u64,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Share of all counted items up to and including this bar, in percent.
    pub cumulative_pct: f64,
    /// Where the cumulative line passes over this bar.
    pub line_y: f64,
}

/// The geometry of a Pareto chart: bars largest first (the caller sorts) over a plot of
/// `width` × `height`, and the cumulative-share line scaled to the same height. `total` is
/// what the shares are of (failures may carry several modes, so it is not the bars' sum).
pub fn pareto(items: &[(String, u64)], total: u64, width: f64, height: f64) -> Vec<ParetoBar> {
    let max = items.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1) as f64;
    let slot = width / items.len().max(1) as f64;
    let gap = (slot * 0.2).min(12.0);
    let sum: u64 = items.iter().map(|(_, c)| c).sum();
    let denominator = total.max(sum).max(1) as f64;
    let mut running = 0;
    items
        .iter()
        .enumerate()
        .map(|(i, (label, count))| {
            running += count;
            let bar_height = *count as f64 / max * height;
            let cumulative = running as f64 / denominator;
            ParetoBar {
                label: label.clone(),
                count: *count,
                x: i as f64 * slot + gap / 2.0,
                y: height - bar_height,
                width: slot - gap,
                height: bar_height,
                cumulative_pct: cumulative * 100.0,
                line_y: height - cumulative * height,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_are_tidied_and_checked() {
        assert_eq!(
            parse_mode_name("  Ignored   tool error "),
            Ok("Ignored tool error".into())
        );
        assert!(parse_mode_name("   ").is_err());
        assert!(parse_mode_name("a, b").is_err());
        assert!(parse_mode_name(&"x".repeat(81)).is_err());
        assert_eq!(mode_key("Ignored  Tool error"), "ignored tool error");
    }

    #[test]
    fn a_codebook_file_groups_codes_and_declares_empty_modes() {
        let file = b"failure_mode,open_code,description\n\
            Tone,rude reply,Replies must be polite\n\
            tone,  Sarcastic ,\n\
            Wrong order status,stale status,\n\
            Hallucination,,Made-up facts\n";
        let modes = parse_codebook(file).unwrap();
        assert_eq!(modes.len(), 3);
        assert_eq!(modes[0].name, "Tone");
        assert_eq!(modes[0].codes, vec!["rude reply", "sarcastic"]);
        assert_eq!(modes[0].description, "Replies must be polite");
        assert_eq!(modes[2].name, "Hallucination");
        assert!(modes[2].codes.is_empty());
    }

    #[test]
    fn a_code_in_two_modes_is_refused_with_its_line() {
        let file = b"open_code,failure_mode\nrude reply,Tone\nRude  reply,Style\n,\nx,\n";
        let problems = parse_codebook(file).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, 3);
        assert!(problems[0].reason.contains("already in \"Tone\" (line 2)"));
        assert_eq!(problems[1].line, 5);
    }

    #[test]
    fn a_file_without_the_columns_is_refused() {
        let problems = parse_codebook(b"mode,code\na,b\n").unwrap_err();
        assert_eq!(problems[0].line, 1);
        assert!(problems[0].reason.contains("failure_mode and open_code"));
    }

    #[test]
    fn pareto_bars_are_scaled_to_the_largest_and_the_line_reaches_the_total() {
        let items = vec![
            ("a".to_string(), 6),
            ("b".to_string(), 3),
            ("c".to_string(), 1),
        ];
        let bars = pareto(&items, 10, 300.0, 100.0);
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[0].height, 100.0);
        assert_eq!(bars[1].height, 50.0);
        assert!((bars[0].cumulative_pct - 60.0).abs() < 1e-9);
        assert!((bars[2].cumulative_pct - 100.0).abs() < 1e-9);
        assert_eq!(bars[2].line_y, 0.0);
        assert!(bars[1].x > bars[0].x + bars[0].width);
        // Shares are of the total given, when it is larger than the sum (several per item).
        let shared = pareto(&items, 20, 300.0, 100.0);
        assert!((shared[2].cumulative_pct - 50.0).abs() < 1e-9);
        assert!(pareto(&[], 0, 300.0, 100.0).is_empty());
    }
}
