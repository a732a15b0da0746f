//! What extraction makes of a file: sections of text, each with its anchor (page, slide,
//! sheet and range, heading path, part), and the notes a reader should know; and the
//! token measure by which the tests and benchmarks compare it with a ground truth.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a section came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// 1-based page (PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// 1-based slide (PPTX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<u32>,
    /// Sheet name (XLSX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Cell range (`A1:F50`) or row range (`rows 1-50`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Headings above the section, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headings: Vec<String>,
    /// A part of the document other than its body (`notes`, `header`, `footnotes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = self.page {
            parts.push(format!("page {p}"));
        }
        if let Some(s) = self.slide {
            parts.push(format!("slide {s}"));
        }
        if let Some(s) = &self.sheet {
            parts.push(format!("sheet {s}"));
        }
        if let Some(r) = &self.range {
            parts.push(r.clone());
        }
        if !self.headings.is_empty() {
            parts.push(self.headings.join(" › "));
        }
        if let Some(p) = &self.part {
            parts.push(p.clone());
        }
        f.write_str(&parts.join(", "))
    }
}

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// Prose.
    Text,
    /// A table as markdown rows (`| a | b |`), one row per line.
    Table,
}

/// A piece of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Where it came from.
    pub anchor: Anchor,
    /// Prose or table.
    pub kind: SectionKind,
    /// The text.
    pub text: String,
}

/// A document's extracted content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// Sections in reading order.
    pub sections: Vec<Section>,
    /// Things a reader should know (an image-only page, a truncated sheet).
    pub notes: Vec<String>,
}

impl Extracted {
    /// Characters of text in all sections.
    pub fn chars(&self) -> usize {
        self.sections.iter().map(|s| s.text.chars().count()).sum()
    }

    /// All text, sections separated by blank lines.
    pub fn text(&self) -> String {
        self.sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// Token recall and precision of `got` against `truth`: lowercased runs of letters and
/// digits compared as multisets. The fidelity measure of the tests and benchmarks.
pub fn token_fidelity(truth: &str, got: &str) -> (f64, f64) {
    fn tokens(text: &str) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for t in text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
            *counts.entry(t.to_lowercase()).or_insert(0) += 1;
        }
        counts
    }
    let (t, g) = (tokens(truth), tokens(got));
    let common: usize = t.iter().map(|(k, n)| (*n).min(*g.get(k).unwrap_or(&0))).sum();
    (common as f64 / t.values().sum::<usize>().max(1) as f64, common as f64 / g.values().sum::<usize>().max(1) as f64)
}
