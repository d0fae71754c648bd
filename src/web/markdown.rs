//! Markdown in untrusted model output, rendered to HTML that is safe to put in a page.
//!
//! Two layers: pulldown-cmark parses (tables and strikethrough on) with raw HTML turned into
//! text and images turned into links before any HTML exists, then ammonia keeps only an
//! allowlist of tags and attributes. Either layer alone would keep the page safe from raw
//! HTML; the sanitizer is the one that must never be skipped, because pulldown-cmark passes
//! `javascript:` links through.
//!
//! What untrusted input becomes:
//! - raw HTML, inline or as a block, HTML comments included, is *escaped*: the reader sees the
//!   markup the model wrote as text, and nothing of it is live;
//! - an image `![alt](url)` becomes a link to `url` whose text is `alt`, so no request leaves
//!   the reader's browser until they click (no tracking pixels, no layout from remote images);
//! - a link keeps its `href` only for `http`, `https` and `mailto` URLs (any letter case);
//!   relative URLs, `javascript:`, `data:` and every other scheme lose the `href` and keep
//!   their text; every link gets `rel="noopener noreferrer"`;
//! - code keeps its text, escaped; a fenced block's language class is dropped.

use std::collections::HashSet;
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The sanitizer, built once: it allows only what [`render`]'s Markdown can produce.
static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::empty();
    b.add_tags([
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "em",
        "strong",
        "del",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "code",
        "pre",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ])
    // `ol start="3"` keeps a list's numbering; a number cannot carry script.
    .add_tag_attributes("ol", ["start"])
    .add_tag_attributes("a", ["href"])
    .add_tag_attributes("th", ["style"])
    .add_tag_attributes("td", ["style"])
    .filter_style_properties(HashSet::from(["text-align"]))
    .url_schemes(HashSet::from(["http", "https", "mailto"]))
    // Deny, not PassThrough: footnotes (`#fn`) are off, so no relative link is ours.
    .url_relative(UrlRelative::Deny)
    // Never also allow `rel` as an attribute: ammonia panics in `clean()` if both are set.
    .link_rel(Some("noopener noreferrer"));
    b
});

/// Renders untrusted Markdown as sanitized HTML (see the module doc for what each hostile
/// construct becomes). Never panics, whatever the input.
pub fn render(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut depth = 0;
    let events = Parser::new_ext(markdown, options)
        .map(defuse)
        .filter(|event| within_depth(event, &mut depth));
    let mut html = String::with_capacity(markdown.len() + markdown.len() / 4);
    pulldown_cmark::html::push_html(&mut html, events);
    SANITIZER.clean(&html).to_string()
}

/// Longest message rendered as Markdown, in bytes; a longer one is shown as plain text
/// (still escaped): sanitizing megabytes on every view would cost more than reading it.
pub const MAX_MARKDOWN_BYTES: usize = 200_000;

/// A message as the trace view shows it: Markdown rendered and sanitized when it looks like
/// Markdown, else `None` — plain text, which the template escapes and shows with its line
/// breaks (so is a message longer than [`MAX_MARKDOWN_BYTES`]).
pub fn render_message(text: &str) -> Option<String> {
    (text.len() <= MAX_MARKDOWN_BYTES && looks_like_markdown(text)).then(|| render(text))
}

/// `value` as a link target when it is one absolute `http`/`https` URL (surrounding spaces
/// ignored), never another scheme.
pub fn safe_url(value: &str) -> Option<String> {
    let value = value.trim();
    if value.len() > 2_000 || value.chars().any(char::is_whitespace) {
        return None;
    }
    let url = url::Url::parse(value).ok()?;
    matches!(url.scheme(), "http" | "https")
        .then(|| url.host_str().is_some())
        .filter(|has_host| *has_host)
        .map(|_| url.to_string())
}

/// Raw HTML becomes text (escaped by the writer); an image becomes a link to its URL.
fn defuse(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    }
}

/// Deepest nesting of tags kept; deeper tags are dropped and their text kept. Real answers
/// nest a few levels; html5ever's tree building is quadratic in depth (10,000 nested quotes,
/// 20 KB of input, took 7 s in a debug build), so an unbounded depth is a cheap stall.
const MAX_DEPTH: usize = 32;

/// Keeps an event unless it opens or closes a tag nested deeper than [`MAX_DEPTH`].
/// `depth` counts the tags open now, kept or not (pulldown-cmark's events are balanced).
fn within_depth(event: &Event<'_>, depth: &mut usize) -> bool {
    match event {
        Event::Start(_) => {
            *depth += 1;
            *depth <= MAX_DEPTH
        }
        Event::End(_) => {
            let keep = *depth <= MAX_DEPTH;
            *depth = depth.saturating_sub(1);
            keep
        }
        _ => true,
    }
}

/// A cheap guess whether `text` uses Markdown syntax (headings, lists, fences, tables,
/// emphasis, links, inline code), so a plain-text answer can keep its line breaks instead
/// of being reflowed into paragraphs. Looks at line starts and a few inline markers only.
pub fn looks_like_markdown(text: &str) -> bool {
    let block = text.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("# ")
            || line.starts_with("## ")
            || line.starts_with("### ")
            || line.starts_with("```")
            || line.starts_with("- ")
            || line.starts_with("* ")
            || line.starts_with("> ")
            || (line.starts_with('|') && line.ends_with('|') && line.len() > 1)
            || ordered_item(line)
    });
    block
        || ["**", "](", "`", "__", "~~"]
            .iter()
            .any(|m| text.contains(m))
}

/// `1. item` or `12) item`.
fn ordered_item(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &line.as_bytes()[digits..];
    digits > 0 && digits <= 9 && matches!(rest, [b'.' | b')', b' ', ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_tags_are_never_live() {
        let html = render("hello <script>alert(1)</script> world\n\n<script>\nalert(2)\n</script>");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;"),
            "raw HTML is escaped, not dropped: {html}"
        );
    }

    #[test]
    fn img_onerror_is_text() {
        let html = render(r#"<img src=x onerror="alert(1)">"#);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img"), "{html}");
    }

    #[test]
    fn javascript_links_lose_their_href() {
        for md in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](  javascript:alert(1) )",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "[x](vbscript:msgbox)",
        ] {
            let html = render(md);
            assert!(!html.contains("href"), "{md} → {html}");
            assert!(
                !html.to_lowercase().contains("javascript:alert"),
                "{md} → {html}"
            );
            assert_eq!(
                html, "<p><a rel=\"noopener noreferrer\">x</a></p>\n",
                "{md}"
            );
        }
    }

    #[test]
    fn entity_encoded_javascript_scheme_loses_its_href() {
        let html = render("[x](&#106;avascript:alert(1))");
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn allowed_links_keep_href_and_get_rel() {
        let html = render("[site](https://example.com/a?b=1) and [mail](mailto:a@example.com)");
        assert!(
            html.contains(
                r#"<a href="https://example.com/a?b=1" rel="noopener noreferrer">site</a>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"href="mailto:a@example.com""#), "{html}");
    }

    #[test]
    fn relative_links_lose_their_href() {
        let html = render("[admin](/admin/import) [up](../x) [frag](#top)");
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn raw_anchor_tags_are_text() {
        let html = render(r#"<a href="https://evil.example" onclick="steal()">click</a>"#);
        assert!(!html.contains("<a "), "{html}");
        assert!(html.contains("&lt;a href="), "{html}");
    }

    #[test]
    fn images_become_links_to_their_url() {
        let html = render("![a cat](https://example.com/cat.png) ![pixel](javascript:x)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(
                r#"<a href="https://example.com/cat.png" rel="noopener noreferrer">a cat</a>"#
            ),
            "{html}"
        );
        assert!(!html.contains("javascript"), "{html}");
    }

    #[test]
    fn tables_keep_structure_and_alignment_only() {
        let md = "| item | price |\n|:-----|------:|\n| tea | 3 |\n| <b>x</b> | 4 |\n";
        let html = render(md);
        for tag in ["<table>", "<thead>", "<tbody>", "<tr>", "<th", "<td"] {
            assert!(html.contains(tag), "{tag} missing: {html}");
        }
        assert!(
            html.contains(r#"<th style="text-align:left">item</th>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<td style="text-align:right">3</td>"#),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn styles_other_than_alignment_never_survive() {
        // pulldown-cmark escapes raw HTML, so only its own `style` reaches the sanitizer;
        // check the sanitizer's rule directly too.
        let cleaned = SANITIZER
            .clean(r#"<td style="text-align: center; background: url(x)">a</td><p style="color:red">b</p>"#)
            .to_string();
        assert!(!cleaned.contains("background"), "{cleaned}");
        assert!(!cleaned.contains("color"), "{cleaned}");
    }

    #[test]
    fn fenced_code_is_escaped_and_loses_its_class() {
        let html = render("```html\n<b>bold?</b>\n```\n\nand `<i>inline</i>`");
        assert!(
            html.contains("<pre><code>&lt;b&gt;bold?&lt;/b&gt;\n</code></pre>"),
            "{html}"
        );
        assert!(
            html.contains("<code>&lt;i&gt;inline&lt;/i&gt;</code>"),
            "{html}"
        );
        assert!(!html.contains("class"), "{html}");
    }

    #[test]
    fn nested_lists_stay_nested() {
        let html = render("- a\n  - b\n    1. c\n- d\n");
        assert_eq!(
            html,
            "<ul>\n<li>a\n<ul>\n<li>b\n<ol>\n<li>c</li>\n</ol>\n</li>\n</ul>\n</li>\n<li>d</li>\n</ul>\n"
        );
    }

    #[test]
    fn ordered_lists_keep_their_start() {
        assert!(render("3. three\n4. four").contains(r#"<ol start="3">"#));
    }

    #[test]
    fn html_comments_are_text() {
        let html = render("before <!-- hidden --> after\n\n<!--\nblock\n-->");
        assert!(!html.contains("<!--"), "{html}");
        assert!(html.contains("&lt;!-- hidden --&gt;"), "{html}");
    }

    #[test]
    fn very_long_and_deeply_nested_input_does_not_panic() {
        let long = "word **bold** [l](https://x.example) <b>x</b>\n".repeat(20_000);
        let html = render(&long);
        assert!(html.len() > long.len() / 2);
        let nested_quotes = "> ".repeat(5_000) + "deep";
        assert!(render(&nested_quotes).contains("deep"));
        let nested_lists: String = (0..2_000)
            .map(|i| format!("{}- x\n", "  ".repeat(i)))
            .collect();
        render(&nested_lists);
        let brackets = "[".repeat(50_000) + &"]".repeat(50_000);
        render(&brackets);
        let emphasis = "*".repeat(100_000);
        render(&emphasis);
    }

    #[test]
    fn nesting_deeper_than_the_cap_keeps_its_text_without_tags() {
        let html = render(&("> ".repeat(100) + "deep"));
        assert_eq!(html.matches("<blockquote>").count(), MAX_DEPTH, "{html}");
        assert_eq!(html.matches("</blockquote>").count(), MAX_DEPTH, "{html}");
        assert!(html.contains("deep"), "{html}");
    }

    #[test]
    fn a_normal_rich_answer_renders_fully() {
        let md = "# Your order\n\nHi **Ana**, your order is *on its way* ~~late~~.\n\n\
                  ## Details\n\n> Tracking: `ZX-12`\n\n1. Packed\n2. Shipped\n\n---\n\n\
                  See [the status page](https://shop.example/status).";
        let html = render(md);
        let expected = "<h1>Your order</h1>\n\
             <p>Hi <strong>Ana</strong>, your order is <em>on its way</em> <del>late</del>.</p>\n\
             <h2>Details</h2>\n\
             <blockquote>\n<p>Tracking: <code>ZX-12</code></p>\n</blockquote>\n\
             <ol>\n<li>Packed</li>\n<li>Shipped</li>\n</ol>\n<hr>\n\
             <p>See <a href=\"https://shop.example/status\" rel=\"noopener noreferrer\">the status page</a>.</p>\n";
        assert_eq!(html, expected);
    }

    #[test]
    fn plain_text_is_escaped() {
        assert_eq!(render("a < b & c > d"), "<p>a &lt; b &amp; c &gt; d</p>\n");
        assert_eq!(render(""), "");
    }

    #[test]
    fn messages_render_markdown_or_plain_text_escaped() {
        assert_eq!(
            render_message("**bold**").as_deref(),
            Some("<p><strong>bold</strong></p>\n")
        );
        assert_eq!(render_message("line 1\nline 2"), None);
        let long = "**x** ".repeat(MAX_MARKDOWN_BYTES / 4);
        assert_eq!(render_message(&long), None);
    }

    #[test]
    fn only_http_urls_become_links() {
        assert_eq!(
            safe_url(" https://example.com/a?b=1 ").as_deref(),
            Some("https://example.com/a?b=1")
        );
        assert_eq!(
            safe_url("http://x.example").as_deref(),
            Some("http://x.example/")
        );
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,x",
            "/relative",
            "see https://x.example",
            "mailto:a@b.c",
            "file:///etc/passwd",
            "https://",
        ] {
            assert_eq!(safe_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn guesses_markdown_cheaply() {
        assert!(looks_like_markdown("# Title\ntext"));
        assert!(looks_like_markdown("Steps:\n1. open\n2. close"));
        assert!(looks_like_markdown("use `cargo`"));
        assert!(looks_like_markdown("see [x](https://x)"));
        assert!(looks_like_markdown("| a | b |\n|---|---|"));
        assert!(!looks_like_markdown(
            "Hello! Your order 12345 ships today.\nThanks, Bot"
        ));
        assert!(!looks_like_markdown("In 2024. we shipped 3 items"));
        assert!(!looks_like_markdown(""));
        assert!(!looks_like_markdown("|"));
    }
}
