//! Chinese, Japanese and Korean in keyword search (tenant migration 11): a run of their
//! characters is matched by its overlapping character pairs. Chunks are paired by the
//! tenant's `kb_fold`; a query is paired here first, so that web-search syntax stays whole
//! around its runs ([`pair_query`]). A hit's span marks whole words as written, and a run
//! is one word so: its marks are narrowed to the characters the query's pairs cover
//! ([`narrow_span`]): for `東京都`, `明日は東京都庁舎に行きます` is marked
//! `明日は**東京都**庁舎に行きます`.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// How the search statement has `ts_headline` mark a match (two noncharacters, which no
/// text holds), so that a chunk's own `**` is never taken for a mark. The statement writes
/// them as `\u{FDD0}` and `\u{FDD1}`; a test in `search` holds the two to agreement.
pub(super) const START_MARK: char = '\u{FDD0}';
/// The end of a match (see [`START_MARK`]).
pub(super) const STOP_MARK: char = '\u{FDD1}';

/// How a hit's span shows a match.
const MARK: &str = "**";

/// Whether `kb_bigrams` pairs `c`: Han (with its extensions and compatibility forms), kana,
/// Hangul syllables and the iteration mark, the ranges of tenant migration 11.
fn is_paired(c: char) -> bool {
    matches!(c,
        '\u{3005}' | '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}' | '\u{f900}'..='\u{faff}' | '\u{20000}'..='\u{2fa1f}')
}

/// A run's characters as `kb_bigrams` writes them: its overlapping pairs, or the one
/// character of a run of one.
fn pairs_text(run: &[char]) -> String {
    if run.len() < 2 {
        return run.iter().collect();
    }
    let pairs: Vec<String> = run.windows(2).map(|w| w.iter().collect()).collect();
    pairs.join(" ")
}

/// A run of paired characters in a query, and whether web-search syntax negates it.
struct Run {
    start: usize,
    end: usize,
    /// Preceded by a `-` that starts a word, outside quotes.
    negated: bool,
}

/// The query's runs, in order.
fn runs(chars: &[char]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            quoted = !quoted;
        }
        if !is_paired(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_paired(chars[i]) {
            i += 1;
        }
        let negated =
            !quoted && start > 0 && chars[start - 1] == '-' && (start == 1 || chars[start - 2].is_whitespace());
        runs.push(Run { start, end: i, negated });
    }
    runs
}

/// The query (NFC, as chunks are folded) with each run of CJK characters written as its
/// pairs and set apart, keeping web-search syntax: a negated run is a negated phrase
/// (`-東京都` → `-"東京 京都"`, not `-東京 京都`); a hyphen joining a run to a word joins
/// nothing (`東京-大阪` → `東京 大阪`, not "Tokyo, not Osaka"); a word `or` written against a
/// run is that word, not the operator (`東京or大阪`). `kb_fold` leaves the pairs as they are.
pub(super) fn pair_query(query: &str) -> String {
    let query: String = query.nfc().collect();
    let chars: Vec<char> = query.chars().collect();
    let runs = runs(&chars);
    if runs.is_empty() {
        return query;
    }
    let mut out = String::with_capacity(query.len() * 2);
    let mut at = 0;
    for run in &runs {
        let mut before: &[char] = &chars[at..run.start];
        // The `-` against the run: an operator kept with the phrase, or a joiner dropped.
        if before.last() == Some(&'-') {
            before = &before[..before.len() - 1];
        }
        push_between(&mut out, before, at > 0);
        let pairs = pairs_text(&chars[run.start..run.end]);
        out.push_str(&if run.negated { format!(" -\"{pairs}\" ") } else { format!(" {pairs} ") });
        at = run.end;
        if chars.get(at) == Some(&'-') {
            at += 1;
        }
    }
    push_between(&mut out, &chars[at..], true);
    out
}

/// What stands between two runs (or before the first, after the last), with a word `or`
/// written against a run quoted so that it is not the operator.
fn push_between(out: &mut String, text: &[char], after_run: bool) {
    let text: String = text.iter().collect();
    let glued_before = after_run && !text.starts_with(char::is_whitespace);
    let glued_after = !text.ends_with(char::is_whitespace);
    let word = text.trim();
    if word.eq_ignore_ascii_case("or") && (glued_before || glued_after) {
        out.push_str(&format!(" '{word}' "));
    } else {
        out.push_str(&text);
    }
}

/// The character pairs of the query's runs that are not negated.
fn query_pairs(query: &str) -> HashSet<(char, char)> {
    let query: String = query.nfc().collect();
    let chars: Vec<char> = query.chars().collect();
    runs(&chars)
        .iter()
        .filter(|run| !run.negated)
        .flat_map(|run| chars[run.start..run.end].windows(2).map(|w| (w[0], w[1])))
        .collect()
}

/// `span`, as `ts_headline` marked it ([`START_MARK`], [`STOP_MARK`]), with each marked run
/// narrowed to the stretches of it the query's pairs cover (a marked word holding none of
/// them, matched otherwise, keeps its marks), and the marks written as `**`.
pub(super) fn narrow_span(span: &str, query: &str) -> String {
    let pairs = query_pairs(query);
    let mut out = String::with_capacity(span.len() + 8);
    let mut rest = span;
    while let Some(start) = rest.find(START_MARK) {
        out.push_str(&rest[..start]);
        let marked = &rest[start + START_MARK.len_utf8()..];
        let (word, after) = match marked.find(STOP_MARK) {
            Some(stop) => (&marked[..stop], &marked[stop + STOP_MARK.len_utf8()..]),
            None => (marked, ""),
        };
        out.push_str(&narrow_marked(word, &pairs));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A marked word: its covered stretches marked, or the whole word when none is.
fn narrow_marked(word: &str, pairs: &HashSet<(char, char)>) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut covered = vec![false; chars.len()];
    for (i, w) in chars.windows(2).enumerate() {
        if pairs.contains(&(w[0], w[1])) {
            covered[i] = true;
            covered[i + 1] = true;
        }
    }
    if !covered.contains(&true) {
        return format!("{MARK}{word}{MARK}");
    }
    let mut out = String::with_capacity(word.len() + 8);
    for (i, c) in chars.iter().enumerate() {
        let before = i > 0 && covered[i - 1];
        if covered[i] != before {
            out.push_str(MARK);
        }
        out.push(*c);
    }
    if covered.last() == Some(&true) {
        out.push_str(MARK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span as `ts_headline` gives it, `[` and `]` standing for the marks.
    fn marked(span: &str) -> String {
        span.replace('[', &START_MARK.to_string()).replace(']', &STOP_MARK.to_string())
    }

    #[test]
    fn a_query_s_runs_are_paired_and_its_syntax_kept() {
        // White space as web search reads it: any amount is one separator.
        let paired = |query: &str| pair_query(query).split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(paired("東京都"), "東京 京都");
        assert_eq!(paired("refund 退款政策"), "refund 退款 款政 政策");
        assert_eq!(paired("使用PostgreSQL数据库"), "使用 PostgreSQL 数据 据库");
        assert_eq!(paired("会議 -東京都"), "会議 -\"東京 京都\"", "the whole run negated");
        assert_eq!(paired("-東京都"), "-\"東京 京都\"");
        assert_eq!(paired("東京-大阪"), "東京 大阪", "a hyphen between runs is no operator");
        assert_eq!(paired("osaka-東京"), "osaka 東京");
        assert_eq!(paired("東京or大阪"), "東京 'or' 大阪", "the word, not the operator");
        assert_eq!(paired("東京 or 大阪"), "東京 or 大阪", "the operator, written apart");
        assert_eq!(paired("\"東京都 -会議\""), "\" 東京 京都 会議 \"", "no operator inside quotes");
        assert_eq!(paired("的"), "的");
        assert_eq!(pair_query("refund -policy"), "refund -policy", "no CJK: as it was");
        // Decomposed kana are composed first, as chunks are folded.
        assert_eq!(paired("か\u{3099}行"), "が行");
    }

    #[test]
    fn a_marked_run_is_narrowed_to_what_the_query_covers() {
        let narrow = |span: &str, query: &str| narrow_span(&marked(span), query);
        assert_eq!(narrow("[明日は東京都庁舎に行きます]。会議", "東京都"), "明日は**東京都**庁舎に行きます。会議");
        assert_eq!(narrow("[本公司的退款政策]，[全额退款]。", "退款"), "本公司的**退款**政策，全额**退款**。");
        assert_eq!(narrow("[退款政策]", "退款政策"), "**退款政策**", "the whole run is the match");
        assert_eq!(narrow("[서울에서] 만나요", "서울"), "**서울**에서 만나요");
        assert_eq!(narrow("[政策很多退款]", "政策 退款"), "**政策**很多**退款**", "two pairs apart, each marked");
        assert_eq!(narrow("[会議は東京都]", "会議 -東京都"), "**会議**は東京都", "a negated run is not marked");
    }

    #[test]
    fn other_marks_and_a_chunk_s_own_asterisks_are_kept() {
        let narrow = |span: &str, query: &str| narrow_span(&marked(span), query);
        assert_eq!(narrow("the [refund] policy", "refund"), "the **refund** policy");
        assert_eq!(narrow("[refund] 政策", "退款"), "**refund** 政策", "no CJK marked");
        assert_eq!(narrow("[使用PostgreSQL数据库]", "PostgreSQL"), "**使用PostgreSQL数据库**");
        assert_eq!(narrow("2**10 等于 1024。[本公司的退款政策]", "退款"), "2**10 等于 1024。本公司的**退款**政策");
        assert_eq!(narrow("**注意**：[退款政策]", "退款"), "**注意**：**退款**政策", "markdown bold is text");
        assert_eq!(narrow("[unclosed", "退款"), "**unclosed**");
        assert_eq!(narrow("", "退款"), "");
    }
}
