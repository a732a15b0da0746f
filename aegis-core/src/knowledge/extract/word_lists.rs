//! Word's list numbering (`word/numbering.xml`): a numbered paragraph shows a label Word
//! computes as it lays the document out — `1.`, `4.2`, `(b)`, `iii.` — that is in no text
//! run, though people cite clauses by it. Each list (`w:num`) counts its levels from
//! their start; a level restarts when a shallower one advances. Bullets are left out: a
//! glyph says nothing a search needs, and the other readers (ODT, RTF) give none.

use std::collections::HashMap;

use quick_xml::{Reader, events::Event};

use super::ooxml::attr;

/// The deepest list level Word has (levels 0–8).
const LEVELS: usize = 9;

/// One level of a list: how its number is written and where it starts.
#[derive(Debug, Clone, Default)]
struct Level {
    /// `decimal`, `lowerLetter`, `upperRoman`, `bullet`, `none`, …
    format: String,
    /// The label's pattern, `%1.%2.` naming the levels' numbers.
    text: String,
    start: u32,
}

/// A list (`w:num`) as defined: the abstract list it instantiates and its start overrides.
#[derive(Default)]
struct Num {
    id: String,
    abstract_id: String,
    /// (level, start) from `w:lvlOverride/w:startOverride`.
    starts: Vec<(usize, u32)>,
}

/// A document's list definitions and, while its text is walked, each list's counters.
#[derive(Debug, Clone, Default)]
pub(super) struct Lists {
    /// `w:numId` → its levels (the abstract list's, with any start overrides).
    lists: HashMap<String, Vec<Level>>,
    /// `w:numId` → the current number of each level (`None`: not started since reset).
    counters: HashMap<String, [Option<u32>; LEVELS]>,
}

impl Lists {
    /// The definitions of a `numbering.xml` part (none when it does not parse).
    pub fn parse(xml: &str) -> Self {
        let mut abstracts: HashMap<String, Vec<Level>> = HashMap::new();
        let mut nums: Vec<Num> = Vec::new();
        let mut reader = Reader::from_str(xml);
        let mut abstract_id: Option<String> = None;
        let mut level: Option<usize> = None;
        let mut override_level: Option<usize> = None;
        loop {
            let event = match reader.read_event() {
                Ok(Event::Eof) | Err(_) => break,
                Ok(event) => event,
            };
            let (Event::Start(e) | Event::Empty(e)) = &event else {
                if let Event::End(e) = &event {
                    match e.local_name().as_ref() {
                        "abstractNum" => abstract_id = None,
                        "lvl" => level = None,
                        "lvlOverride" => override_level = None,
                        _ => {}
                    }
                }
                continue;
            };
            let value = || attr(e, "val");
            let index = |name: &str| attr(e, name).and_then(|v| v.parse::<usize>().ok()).filter(|l| *l < LEVELS);
            match e.local_name().as_ref() {
                "abstractNum" => abstract_id = attr(e, "abstractNumId"),
                "lvl" if abstract_id.is_some() => level = index("ilvl"),
                "num" => nums.push(Num { id: attr(e, "numId").unwrap_or_default(), ..Num::default() }),
                "abstractNumId" => {
                    if let Some(num) = nums.last_mut() {
                        num.abstract_id = value().unwrap_or_default();
                    }
                }
                "lvlOverride" => override_level = index("ilvl"),
                "startOverride" => {
                    if let (Some(num), Some(l), Some(start)) =
                        (nums.last_mut(), override_level, value().and_then(|v| v.parse().ok()))
                    {
                        num.starts.push((l, start));
                    }
                }
                name @ ("start" | "numFmt" | "lvlText") => {
                    let (Some(id), Some(l)) = (&abstract_id, level) else { continue };
                    let levels = abstracts.entry(id.clone()).or_insert_with(|| vec![Level::default(); LEVELS]);
                    let level = &mut levels[l];
                    match name {
                        "start" => level.start = value().and_then(|v| v.parse().ok()).unwrap_or(1),
                        "numFmt" => level.format = value().unwrap_or_default(),
                        _ => level.text = value().unwrap_or_default(),
                    }
                }
                _ => {}
            }
        }
        let lists = nums
            .into_iter()
            .filter_map(|num| {
                let mut levels = abstracts.get(&num.abstract_id)?.clone();
                for (l, start) in num.starts {
                    levels[l].start = start;
                }
                Some((num.id, levels))
            })
            .collect();
        Self { lists, counters: HashMap::new() }
    }

    /// The label of the next paragraph of list `num_id` at level `level`, counting it:
    /// `None` for no list (`numId` 0, an unknown one) or a level without a label.
    pub fn next_label(&mut self, num_id: &str, level: usize) -> Option<String> {
        let levels = self.lists.get(num_id)?;
        let level = level.min(LEVELS - 1);
        let counters = self.counters.entry(num_id.to_owned()).or_insert([None; LEVELS]);
        let this = &levels[level];
        counters[level] = Some(counters[level].map_or(this.start, |n| n.saturating_add(1)));
        for deeper in &mut counters[level + 1..] {
            *deeper = None;
        }
        if matches!(this.format.as_str(), "bullet" | "none") {
            return None;
        }
        let mut label = String::new();
        let mut chars = this.text.chars().peekable();
        while let Some(c) = chars.next() {
            let named = chars.peek().and_then(|d| d.to_digit(10)).map(|d| d as usize);
            match (c, named) {
                ('%', Some(n @ 1..=LEVELS)) => {
                    chars.next();
                    let of = &levels[n - 1];
                    label.push_str(&written(counters[n - 1].unwrap_or(of.start), &of.format));
                }
                _ => label.push(c),
            }
        }
        let label = label.trim();
        (!label.is_empty()).then(|| label.to_owned())
    }
}

/// `n` written in the list format `format` (decimal for the ones not known).
fn written(n: u32, format: &str) -> String {
    match format {
        "lowerLetter" => letters(n).to_lowercase(),
        "upperLetter" => letters(n),
        "lowerRoman" => roman(n).to_lowercase(),
        "upperRoman" => roman(n),
        "decimalZero" => format!("{n:02}"),
        _ => n.to_string(),
    }
}

/// Word's letters: A … Z, then AA … ZZ, AAA … (the letter repeated).
fn letters(n: u32) -> String {
    let n = n.max(1) - 1;
    let letter = char::from(b'A' + u8::try_from(n % 26).unwrap_or(0));
    std::iter::repeat_n(letter, (n / 26) as usize % 100 + 1).collect()
}

/// Roman numerals (at most 3,999; larger numbers in decimal).
fn roman(n: u32) -> String {
    if !(1..4000).contains(&n) {
        return n.to_string();
    }
    const DIGITS: [(u32, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let (mut n, mut out) = (n, String::new());
    for (value, digits) in DIGITS {
        while n >= value {
            out.push_str(digits);
            n -= value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBERING: &str = r#"<w:numbering xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
        <w:abstractNum w:abstractNumId="0">
          <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
          <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>
          <w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/><w:lvlText w:val="(%3)"/></w:lvl>
        </w:abstractNum>
        <w:abstractNum w:abstractNumId="1">
          <w:lvl w:ilvl="0"><w:numFmt w:val="bullet"/><w:lvlText w:val="&#xF0B7;"/></w:lvl>
        </w:abstractNum>
        <w:abstractNum w:abstractNumId="2">
          <w:lvl w:ilvl="0"><w:start w:val="4"/><w:numFmt w:val="upperRoman"/><w:lvlText w:val="Article %1"/></w:lvl>
        </w:abstractNum>
        <w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>
        <w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num>
        <w:num w:numId="3"><w:abstractNumId w:val="2"/></w:num>
        <w:num w:numId="4"><w:abstractNumId w:val="0"/><w:lvlOverride w:ilvl="0"><w:startOverride w:val="7"/></w:lvlOverride></w:num>
      </w:numbering>"#;

    #[test]
    fn labels_count_by_level_and_restart_below_the_level_that_advances() {
        let mut lists = Lists::parse(NUMBERING);
        let labels: Vec<Option<String>> =
            [("1", 0), ("1", 1), ("1", 1), ("1", 2), ("1", 2), ("1", 0), ("1", 1), ("1", 2)]
                .into_iter()
                .map(|(num, level)| lists.next_label(num, level))
                .collect();
        let labels: Vec<&str> = labels.iter().map(|l| l.as_deref().unwrap_or("-")).collect();
        assert_eq!(labels, ["1.", "1.1", "1.2", "(a)", "(b)", "2.", "2.1", "(a)"]);
        assert_eq!(lists.next_label("2", 0), None, "a bullet is no label");
        assert_eq!(lists.next_label("3", 0).as_deref(), Some("Article IV"));
        assert_eq!(lists.next_label("3", 0).as_deref(), Some("Article V"));
        assert_eq!(lists.next_label("4", 0).as_deref(), Some("7."), "a list of its own, started over");
        assert_eq!(lists.next_label("1", 0).as_deref(), Some("3."), "each list counts on its own");
        assert_eq!(lists.next_label("0", 0), None, "numId 0 is no list");
        assert_eq!(lists.next_label("99", 0), None);
    }

    #[test]
    fn numbers_are_written_in_their_format() {
        assert_eq!([1, 26, 27, 53].map(letters), ["A", "Z", "AA", "AAA"]);
        assert_eq!(
            [1, 4, 9, 14, 1999, 3999, 4000].map(roman),
            ["I", "IV", "IX", "XIV", "MCMXCIX", "MMMCMXCIX", "4000"]
        );
        assert_eq!(written(3, "decimalZero"), "03");
        assert_eq!(written(3, "lowerRoman"), "iii");
        assert_eq!(written(3, "cardinalText"), "3", "formats not known are decimal");
    }
}
