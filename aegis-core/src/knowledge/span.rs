//! A hit's span marks whole words as written; a run of Chinese, Japanese or Korean text is
//! one word so (it is matched by its character pairs, tenant migration 11), and its marks
//! are narrowed here to the characters the query's pairs cover: for `東京都`,
//! `**明日は東京都庁舎に行きます**` becomes `明日は**東京都**庁舎に行きます`.

use std::collections::HashSet;

/// How `ts_headline` marks a match (the search statement's `StartSel` and `StopSel`).
const MARK: &str = "**";

/// Whether `kb_bigrams` pairs `c`: Han (with its extensions and compatibility forms), kana,
/// Hangul syllables and the iteration mark, the ranges of tenant migration 11.
pub(super) fn is_paired(c: char) -> bool {
    matches!(c,
        '\u{3005}' | '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}' | '\u{f900}'..='\u{faff}' | '\u{20000}'..='\u{2fa1f}')
}

/// The character pairs of the query's runs.
fn pairs(query: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = query.chars().collect();
    chars.windows(2).filter(|w| is_paired(w[0]) && is_paired(w[1])).map(|w| (w[0], w[1])).collect()
}

/// `span` with each marked run narrowed to the stretches of it the query's pairs cover. A
/// marked word holding none of them (matched otherwise) keeps its marks.
pub(super) fn narrow(span: &str, query: &str) -> String {
    let pairs = pairs(query);
    if pairs.is_empty() || !span.chars().any(is_paired) {
        return span.to_owned();
    }
    let mut out = String::with_capacity(span.len() + 8);
    // Marked words are the odd parts; each is written back with its marks.
    for (i, part) in span.split(MARK).enumerate() {
        if i % 2 == 1 {
            out.push_str(&narrow_marked(part, &pairs));
        } else {
            out.push_str(part);
        }
    }
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
        if covered[i] && !before {
            out.push_str(MARK);
        }
        if !covered[i] && before {
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

    #[test]
    fn a_marked_run_is_narrowed_to_what_the_query_covers() {
        assert_eq!(narrow("**明日は東京都庁舎に行きます**。会議", "東京都"), "明日は**東京都**庁舎に行きます。会議");
        assert_eq!(narrow("**本公司的退款政策**，**全额退款**。", "退款"), "本公司的**退款**政策，全额**退款**。");
        assert_eq!(narrow("**退款政策**", "退款政策"), "**退款政策**", "the whole run is the match");
        assert_eq!(narrow("**서울에서** 만나요", "서울"), "**서울**에서 만나요");
        // Two pairs of the query apart in the run: each marked.
        assert_eq!(narrow("**政策很多退款**", "政策 退款"), "**政策**很多**退款**");
    }

    #[test]
    fn other_marks_and_text_are_left_as_they_are() {
        assert_eq!(narrow("the **refund** policy", "refund"), "the **refund** policy", "no CJK in the query");
        assert_eq!(narrow("**refund** 政策", "退款"), "**refund** 政策", "no CJK marked");
        assert_eq!(narrow("**使用PostgreSQL数据库**", "PostgreSQL"), "**使用PostgreSQL数据库**");
        assert_eq!(
            narrow("**使用PostgreSQL数据库** and **Zürich**", "数据 Zürich"),
            "使用PostgreSQL**数据**库 and **Zürich**"
        );
        assert_eq!(narrow("", "退款"), "");
    }
}
