//! Generated BotDojo-format conversations: the first-run demo dataset, and deterministic
//! files of any size for tests and benchmarks.

use std::io::Write;

use crate::db::decisions::SessionTag;
use crate::db::{Db, datasets, users};
use crate::import;

/// The 28 columns of a BotDojo export, in its order.
pub const BOTDOJO_COLUMNS: [&str; 28] = [
    "id",
    "Flow Session",
    "Turn_Number",
    "Total_Turns_in_Session",
    "body.user_message",
    "response.text_output",
    "AI Message",
    "Created At",
    "Flow Name",
    "Flow Version",
    "Model",
    "Latency ms",
    "Prompt Tokens",
    "Completion Tokens",
    "Total Tokens",
    "Cost USD",
    "Status",
    "Error",
    "User Id",
    "Channel",
    "Locale",
    "Session Start",
    "Session End",
    "Tags",
    "Feedback",
    "Rating",
    "Environment",
    "Trace URL",
];

const QUESTIONS: [&str; 8] = [
    "Where is my order {n}? It was supposed to arrive yesterday.",
    "Can I get a refund for order {n}? The blender arrived broken.",
    "Please change the delivery address of order {n} to 12 Harbour Street.",
    "Do you ship to Canada, and how long does it take?",
    "My discount code SAVE20 doesn't work on order {n}.",
    "What's the warranty on the espresso machine?",
    "I was charged twice for order {n}!!",
    "Cancel order {n}, I don't need it anymore.",
];

const TOOLS: [&str; 5] = [
    "lookup_order",
    "issue_refund",
    "update_address",
    "search_policies",
    "check_payment",
];

/// A small deterministic generator (no global RNG, same output on every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `conversations` conversations (1–6 turns each) in BotDojo format. Streams: memory
/// does not depend on the size. Returns the number of rows written.
pub fn write_botdojo<W: Write>(out: W, conversations: u64, seed: u64) -> anyhow::Result<u64> {
    generate(out, conversations, u64::MAX, seed, RowShape::Light)
}

/// Writes exactly `rows` rows (traces) in BotDojo format, for benchmarks at a round size:
/// the same conversations as `write_botdojo`, the last one cut short to fit.
pub fn write_botdojo_rows<W: Write>(
    out: W,
    rows: u64,
    seed: u64,
    shape: RowShape,
) -> anyhow::Result<u64> {
    generate(out, u64::MAX, rows, seed, shape)
}

/// How heavy each generated row is (`light` or `heavy` on a command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowShape {
    /// About 1 KB a row: one tool step, short messages (the demo and the tests).
    Light,
    /// About 2.3 KB a row, like real BotDojo exports: longer messages, an `AI Message` of
    /// 1–2 KB with 1–4 tool steps, and one row in 2,000 carrying a 50 KB tool result.
    Heavy,
}

impl RowShape {
    /// The name in file names and saved figures: none for the light rows.
    pub fn suffix(self) -> &'static str {
        match self {
            RowShape::Light => "",
            RowShape::Heavy => "heavy",
        }
    }
}

/// Filler prose for heavy rows: deterministic, word-like, searchable.
const PROSE: [&str; 12] = [
    "the customer",
    "mentioned that",
    "the parcel",
    "was left at",
    "the neighbour's door",
    "and the tracking page",
    "still shows it",
    "as in transit",
    "so I checked",
    "the carrier's records",
    "against our warehouse",
    "dispatch log",
];

/// About `min` to `min + spread` bytes of [`PROSE`].
fn prose(rng: &mut Lcg, min: usize, spread: u64) -> String {
    let bytes = min + rng.below(spread.max(1)) as usize;
    let mut s = String::with_capacity(bytes + 24);
    while s.len() < bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(PROSE[rng.below(PROSE.len() as u64) as usize]);
    }
    s.push('.');
    s
}

/// An extra tool step of a heavy row: a lookup with a result of a few hundred bytes.
fn extra_step(rng: &mut Lcg, order: u64, start: u64) -> serde_json::Value {
    let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
    let end = start + 80 + rng.below(900);
    let source = ["warehouse", "carrier", "payments", "crm"][rng.below(4) as usize];
    let content = serde_json::json!({
        "order": order,
        "source": source,
        "notes": prose(rng, 100, 150),
    });
    let arguments = serde_json::json!({"order_id": order.to_string(), "include_history": true});
    tool_step(tool, arguments, &content, start, end)
}

/// A tool step of `AI Message` as BotDojo writes it: the result as a JSON string.
fn tool_step(
    tool: &str,
    arguments: serde_json::Value,
    result: &serde_json::Value,
    start: u64,
    end: u64,
) -> serde_json::Value {
    serde_json::json!({
        "type": "tool", "stepLabel": tool,
        "arguments": arguments,
        "content": result.to_string(),
        "startTime": start, "endTime": end,
    })
}

fn generate<W: Write>(
    out: W,
    conversations: u64,
    max_rows: u64,
    seed: u64,
    shape: RowShape,
) -> anyhow::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(BOTDOJO_COLUMNS)?;
    let mut rng = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut rows = 0;
    for c in 0..conversations {
        if rows >= max_rows {
            break;
        }
        let turns = (1 + rng.below(6)).min(max_rows - rows);
        let session = format!("sess-{seed:x}-{c:07}");
        let order = 10_000 + rng.below(90_000);
        for turn in 1..=turns {
            let q = QUESTIONS[rng.below(QUESTIONS.len() as u64) as usize]
                .replace("{n}", &order.to_string());
            let user = if turn == 1 {
                q
            } else {
                format!(
                    "Follow-up {turn}: {}",
                    QUESTIONS[rng.below(8) as usize].replace("{n}", &order.to_string())
                )
            };
            let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
            let failed = rng.below(10) == 0;
            let start = 1_767_000_000_000u64 + c * 60_000 + turn * 5_000;
            let end = start + 80 + rng.below(900);
            let mut result = if failed {
                serde_json::json!({"error": "upstream timeout"})
            } else {
                let status = ["shipped", "processing", "delivered"][rng.below(3) as usize];
                serde_json::json!({"order": order, "status": status, "eta_days": rng.below(7)})
            };
            let heavy = shape == RowShape::Heavy;
            if heavy && !failed {
                result["notes"] = serde_json::json!(prose(&mut rng, 80, 160));
                if rng.below(2_000) == 0 {
                    result["raw_response"] = serde_json::json!(prose(&mut rng, 50_000, 1));
                }
            }
            let arguments = serde_json::json!({"order_id": order.to_string()});
            let mut step = tool_step(tool, arguments, &result, start, end);
            if failed {
                step["error"] = serde_json::json!("upstream timeout");
            }
            let mut answer = if failed {
                "I'm sorry, I couldn't reach our order system right now. Please try again in a few minutes.".to_string()
            } else {
                format!(
                    "I checked order {order}: it is {}. Anything else I can help with?",
                    result["status"].as_str().unwrap_or("being processed")
                )
            };
            let mut user = user;
            let mut thinking = "Look up the order first.".to_string();
            let mut steps = vec![step];
            if heavy {
                user = format!("{user} {}", prose(&mut rng, 40, 120));
                thinking = format!("Look up the order first, then {}", prose(&mut rng, 60, 100));
                for k in 0..rng.below(4) {
                    steps.push(extra_step(&mut rng, order, end + k * 1_000));
                }
                answer = format!("{answer} {}", prose(&mut rng, 100, 200));
            }
            let mut all_steps = vec![serde_json::json!(
                {"type": "thinking", "stepLabel": "Thinking", "content": thinking}
            )];
            all_steps.extend(steps);
            all_steps.push(
                serde_json::json!({"type": "output", "stepLabel": "Output", "content": answer}),
            );
            let ai_message = serde_json::json!({"steps": all_steps});
            let prompt_tokens = 200 + rng.below(800);
            let completion_tokens = 20 + rng.below(200);
            let record: [String; 28] = [
                format!("{session}-t{turn}"),
                session.clone(),
                turn.to_string(),
                turns.to_string(),
                user,
                answer.clone(),
                ai_message.to_string(),
                format!("2026-01-{:02}T10:{:02}:00Z", 1 + c % 28, turn),
                "support-bot".into(),
                "v3".into(),
                ["gpt-4o-mini", "claude-haiku", "llama-3-70b"][rng.below(3) as usize].into(),
                (end - start + 400).to_string(),
                prompt_tokens.to_string(),
                completion_tokens.to_string(),
                (prompt_tokens + completion_tokens).to_string(),
                format!(
                    "{:.5}",
                    (prompt_tokens + completion_tokens) as f64 * 0.000002
                ),
                if failed { "error".into() } else { "ok".into() },
                if failed {
                    "tool timeout".into()
                } else {
                    String::new()
                },
                format!("user-{}", rng.below(5000)),
                ["web", "ios", "android"][rng.below(3) as usize].into(),
                "en-US".into(),
                format!("2026-01-{:02}T10:00:00Z", 1 + c % 28),
                format!("2026-01-{:02}T10:{:02}:00Z", 1 + c % 28, turns),
                "orders".into(),
                String::new(),
                String::new(),
                "production".into(),
                format!("https://botdojo.example/trace/{session}/{turn}"),
            ];
            w.write_record(&record)?;
            rows += 1;
        }
    }
    w.flush()?;
    Ok(rows)
}

/// Name of the first-run demo dataset.
pub const DEMO_DATASET: &str = "Demo: support bot";

/// Imports a small demo dataset when the database holds no traces yet.
pub async fn load_if_empty(db: &Db) -> anyhow::Result<()> {
    if datasets::by_slug(db, "demo-support-bot")
        .await?
        .is_some_and(|d| d.trace_count > 0)
    {
        return Ok(());
    }
    let has_any: Option<i64> =
        sqlx::query_scalar("SELECT id FROM datasets WHERE trace_count > 0 LIMIT 1")
            .fetch_optional(db.reader())
            .await?;
    if has_any.is_some() {
        return Ok(());
    }
    let mut csv = Vec::new();
    let rows = write_botdojo(&mut csv, 20, 7)?;
    let pending = import::register(db, DEMO_DATASET, "demo.csv", None, csv.len() as i64).await?;
    let report = import::run(db, &pending, std::io::Cursor::new(csv), None).await?;
    tracing::info!(rows, inserted = report.inserted, "loaded the demo dataset");
    add_team_review_demo(db, pending.dataset_id).await?;
    Ok(())
}

/// Two demo annotators who coded the same first traces, agreeing on most and not on a
/// few, so the agreement page, the disagreements and the reference labels have something
/// to show on a first run. (No assignment: whoever signs in may code everything.)
async fn add_team_review_demo(db: &Db, dataset: crate::domain::DatasetId) -> anyhow::Result<()> {
    use crate::db::saves::{self, TraceRef};
    use crate::db::scope::Scope;
    use crate::domain::{AnnotationInput, SortKey, TracePk};

    // (note, Ada's code, Ben's code): the same failures in their own words, so the codebook
    // has spelling variants to group and a suggestion to offer.
    const CODES: [(&str, &str, &str); 4] = [
        (
            "The answer ignores the tool's error",
            "ignored tool error",
            "tool error ignored",
        ),
        (
            "Wrong order status given",
            "wrong order status",
            "Wrong status",
        ),
        (
            "Promised a refund without checking",
            "unverified promise",
            "unverified promise",
        ),
        (
            "Curt, unhelpful tone",
            "unhelpful tone",
            "unhelpful curt tone",
        ),
    ];
    let coders = [
        ("Ada (demo)", "ada.demo@localhost"),
        ("Ben (demo)", "ben.demo@localhost"),
    ];
    let traces: Vec<(TracePk, SortKey, String)> = sqlx::query_as(
        "SELECT id, sort_key, tool_calls FROM traces WHERE dataset_id = $1 ORDER BY sort_key LIMIT 24",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    for (who, (name, email)) in coders.into_iter().enumerate() {
        let who_am = users::SignIn {
            issuer: crate::auth::dev::DEV_ISSUER,
            subject: &name.to_lowercase(),
            email,
            name,
            email_verified: true,
        };
        let user = users::upsert(db, &who_am, false).await?;
        let scope = Scope::own(dataset, user.id);
        for (i, (pk, sort_key, tool_calls)) in traces.iter().enumerate() {
            let (pk, sort_key) = (*pk, *sort_key);
            // Ada fails a trace whose tool call failed, and every sixth for other reasons;
            // Ben agrees but for every seventh, and names a different failure on every fifth.
            let ada_fails = tool_calls.contains("\"ok\":false") || i % 6 == 1;
            let fails = if who == 1 && i % 7 == 3 {
                !ada_fails
            } else {
                ada_fails
            };
            let (note, ada_code, ben_code) =
                CODES[(i + usize::from(who == 1 && i % 5 == 4)) % CODES.len()];
            let code = if who == 0 { ada_code } else { ben_code };
            let input = if fails {
                AnnotationInput::parse("fail", note, code, "", 0)
            } else {
                AnnotationInput::parse("pass", "", "", "", 0)
            }
            .map_err(|e| anyhow::anyhow!("demo annotation: {:?}", e.messages()))?;
            let target = TraceRef {
                pk,
                dataset_id: dataset,
                sort_key,
            };
            saves::save(db, target, &scope, &input, SessionTag(0)).await?;
        }
    }
    add_demo_codebook(db, dataset).await?;
    add_demo_judge(db, dataset).await
}

/// A demo codebook: three failure modes grouping both demo annotators' spellings, with
/// their definitions; the tone codes stay ungrouped, for the suggested groupings to offer.
async fn add_demo_codebook(db: &Db, dataset: crate::domain::DatasetId) -> anyhow::Result<()> {
    const CODEBOOK: &str = "failure_mode,open_code,description
Ignored tool error,ignored tool error,\"The reply goes on as if a failed tool call had worked. Pass: 'I could not reach the order system, let me retry.' Fail: 'Your order is on its way' after the lookup failed.\"
Ignored tool error,tool error ignored,
Wrong order status,wrong order status,\"The reply states an order status the tools did not return. Pass: the status the lookup gave. Fail: 'shipped' when the lookup said 'processing'.\"
Wrong order status,wrong status,
Unverified promise,unverified promise,\"The reply promises a refund, credit or date without a tool confirming it. Pass: 'I have asked for a refund; you will get an email.' Fail: 'You will have your refund tomorrow.'\"
";
    match crate::codebook::import(db, dataset, "demo", CODEBOOK.as_bytes()).await? {
        Ok(_) => Ok(()),
        Err(problems) => Err(anyhow::anyhow!("demo codebook: {problems:?}")),
    }
}

/// A demo LLM judge over every trace: it fails the traces whose tool call failed, and
/// otherwise passes — right most of the time, wrong on the traces the demo annotators fail
/// for other reasons, so the judges page has a confusion matrix to show.
async fn add_demo_judge(db: &Db, dataset: crate::domain::DatasetId) -> anyhow::Result<()> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT trace_id, tool_calls FROM traces WHERE dataset_id = $1 ORDER BY sort_key",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    let mut csv = String::from("trace_id,verdict\n");
    for (trace_id, tool_calls) in rows {
        let failed_tool = tool_calls.contains("\"ok\":false");
        csv.push_str(&format!(
            "{trace_id},{}\n",
            if failed_tool { "Fail" } else { "Pass" }
        ));
    }
    match crate::judges::import(
        db,
        dataset,
        "demo judge",
        "demo-judge.csv",
        "demo",
        csv.as_bytes(),
    )
    .await?
    {
        Ok(_) => Ok(()),
        Err(refusal) => Err(anyhow::anyhow!("demo judge: {}", refusal.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_has_28_columns() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let rows = write_botdojo(&mut a, 5, 1).unwrap();
        write_botdojo(&mut b, 5, 1).unwrap();
        assert_eq!(a, b);
        let mut r = csv::Reader::from_reader(a.as_slice());
        assert_eq!(r.headers().unwrap().len(), 28);
        assert_eq!(r.records().count() as u64, rows);
        assert!(rows >= 5);
    }

    #[test]
    fn rows_variant_writes_exactly_that_many_rows() {
        for shape in [RowShape::Light, RowShape::Heavy] {
            let mut a = Vec::new();
            assert_eq!(write_botdojo_rows(&mut a, 10, 3, shape).unwrap(), 10);
            let mut r = csv::Reader::from_reader(a.as_slice());
            assert_eq!(r.records().count(), 10, "{shape:?}");
        }
    }

    #[test]
    fn heavy_rows_are_shaped_like_real_exports() {
        let rows = 4_000;
        let (mut light, mut heavy) = (Vec::new(), Vec::new());
        write_botdojo_rows(&mut light, rows, 7, RowShape::Light).unwrap();
        write_botdojo_rows(&mut heavy, rows, 7, RowShape::Heavy).unwrap();
        let average = heavy.len() as u64 / rows;
        assert!((2_000..2_700).contains(&average), "{average} bytes a row");
        assert!(heavy.len() > 2 * light.len());
        let mut r = csv::Reader::from_reader(heavy.as_slice());
        let ai = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "AI Message")
            .unwrap();
        let (mut big_cells, mut steps_seen) = (0, std::collections::BTreeSet::new());
        for record in r.records() {
            let record = record.unwrap();
            assert_eq!(record.len(), 28);
            let message: serde_json::Value = serde_json::from_str(&record[ai]).unwrap();
            let tools = message["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["type"] == "tool")
                .count();
            assert!((1..=4).contains(&tools), "{tools} tool steps");
            steps_seen.insert(tools);
            big_cells += usize::from(record[ai].len() > 50_000);
        }
        assert_eq!(steps_seen.len(), 4, "1 to 4 tool steps all occur");
        assert!(
            (1..=6).contains(&big_cells),
            "{big_cells} rows with a 50 KB cell"
        );
    }
}
