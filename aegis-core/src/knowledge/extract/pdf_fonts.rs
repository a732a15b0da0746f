//! How far a PDF font moves the pen for each code it shows: the widths a text walk needs
//! to know where a string ends (see `pdf_text`). Simple fonts list theirs (`/Widths` from
//! `/FirstChar`), composite ones in their descendant's `/W` array; the standard fonts a
//! PDF may name without embedding (Helvetica, Times, Courier) have none in the file, so
//! their Adobe metrics for the printable ASCII codes stand in, marked approximate.

use std::collections::HashMap;

use lopdf::{Dictionary, Document, Object};

/// The widths of one font, in text space units per unit of font size.
#[derive(Debug)]
pub(super) enum Widths {
    /// One byte per code: `widths[code - first]`, else `missing`.
    Simple {
        /// The first code `widths` covers.
        first: u32,
        /// Each code's width.
        widths: Vec<f64>,
        /// The width of a code outside the list.
        missing: f64,
        /// False when the widths are a standard font's stand-ins.
        exact: bool,
    },
    /// Two bytes per code (`Identity-H`): the code is the CID.
    Composite {
        /// Widths from `/W`.
        widths: HashMap<u32, f64>,
        /// `/DW`.
        default: f64,
    },
    /// Not known (another CMap, vertical writing, a damaged font).
    Unknown,
}

/// The pen's advance for showing a string, before character and word spacing.
pub(super) struct Advance {
    /// The glyphs' widths, in units of font size.
    pub glyphs: f64,
    /// The codes shown (character spacing widens each).
    pub codes: usize,
    /// The single-byte spaces among them (word spacing widens each).
    pub spaces: usize,
}

impl Widths {
    /// The widths of `font`.
    pub fn of(document: &Document, font: &Dictionary) -> Widths {
        let subtype = font.get(b"Subtype").and_then(Object::as_name).unwrap_or_default();
        if subtype == b"Type0" {
            return composite(document, font).unwrap_or(Widths::Unknown);
        }
        // Type 3 glyphs are measured in the font's own matrix; the others in thousandths.
        let scale = if subtype == b"Type3" {
            font.get(b"FontMatrix")
                .ok()
                .and_then(|m| resolve(document, m)?.as_array().ok()?.first()?.as_float().ok())
                .map_or(0.001, f64::from)
        } else {
            0.001
        };
        let listed = font.get(b"Widths").ok().and_then(|w| {
            let widths: Vec<f64> = resolve(document, w)?
                .as_array()
                .ok()?
                .iter()
                .map(|v| number(document, v).map_or(0.0, |v| v * scale))
                .collect();
            Some(widths)
        });
        if let Some(widths) = listed.filter(|w| !w.is_empty()) {
            let first = font.get(b"FirstChar").ok().and_then(|v| resolve(document, v)?.as_i64().ok()).unwrap_or(0);
            let descriptor_missing = font
                .get(b"FontDescriptor")
                .ok()
                .and_then(|d| resolve(document, d)?.as_dict().ok()?.get(b"MissingWidth").ok()?.as_float().ok())
                .map(|w| f64::from(w) * scale);
            let mean = widths.iter().filter(|w| **w > 0.0).sum::<f64>() / widths.len() as f64;
            return Widths::Simple {
                first: u32::try_from(first).unwrap_or(0),
                widths,
                missing: descriptor_missing.unwrap_or(mean),
                exact: true,
            };
        }
        standard(font.get(b"BaseFont").and_then(Object::as_name).unwrap_or_default())
    }

    /// The advance of `bytes`, or None when the widths are unknown.
    pub fn advance(&self, bytes: &[u8]) -> Option<Advance> {
        match self {
            Widths::Simple { first, widths, missing, .. } => {
                let glyphs = bytes
                    .iter()
                    .map(|&b| {
                        u32::from(b)
                            .checked_sub(*first)
                            .and_then(|i| widths.get(i as usize))
                            .copied()
                            .unwrap_or(*missing)
                    })
                    .sum();
                let spaces = bytes.iter().filter(|&&b| b == b' ').count();
                Some(Advance { glyphs, codes: bytes.len(), spaces })
            }
            Widths::Composite { widths, default } => {
                let codes = bytes.chunks(2).map(|pair| pair.iter().fold(0u32, |code, &b| code << 8 | u32::from(b)));
                let glyphs = codes.clone().map(|code| widths.get(&code).copied().unwrap_or(*default)).sum();
                Some(Advance { glyphs, codes: bytes.len().div_ceil(2), spaces: 0 })
            }
            Widths::Unknown => None,
        }
    }

    /// Whether the widths are the font's own (not a standard font's stand-ins).
    pub fn exact(&self) -> bool {
        !matches!(self, Widths::Simple { exact: false, .. })
    }
}

/// A `Type0` font written with `Identity-H`: codes are CIDs, widths in the descendant.
fn composite(document: &Document, font: &Dictionary) -> Option<Widths> {
    let encoding = font.get(b"Encoding").ok()?.as_name().ok()?;
    if encoding != b"Identity-H" {
        return None;
    }
    let descendants = resolve(document, font.get(b"DescendantFonts").ok()?)?.as_array().ok()?;
    let descendant = resolve(document, descendants.first()?)?.as_dict().ok()?;
    let number = |o: &Object| number(document, o);
    let default = descendant.get(b"DW").ok().and_then(number).unwrap_or(1000.0) / 1000.0;
    let mut widths = HashMap::new();
    if let Some(list) = descendant.get(b"W").ok().and_then(|w| resolve(document, w)?.as_array().ok()) {
        let mut items = list.iter().peekable();
        while let Some(first) = items.next().and_then(number) {
            let first = first as u32;
            match items.next().map(|o| resolve(document, o).unwrap_or(o)) {
                Some(Object::Array(run)) => {
                    for (i, w) in run.iter().enumerate() {
                        widths.insert(first + i as u32, number(w).unwrap_or(0.0) / 1000.0);
                    }
                }
                Some(last) => {
                    let (Some(last), Some(w)) = (number(last), items.next().and_then(number)) else { break };
                    // A range is capped: a hostile file could name four billion codes.
                    for code in first..=(last as u32).min(first.saturating_add(65_535)) {
                        widths.insert(code, w / 1000.0);
                    }
                }
                None => break,
            }
        }
    }
    Some(Widths::Composite { widths, default })
}

/// `object`, or what it refers to.
pub(super) fn resolve<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Object> {
    document.dereference(object).ok().map(|(_, o)| o)
}

/// `object`, or what it refers to, as a number.
pub(super) fn number(document: &Document, object: &Object) -> Option<f64> {
    resolve(document, object).and_then(|o| o.as_float().ok()).map(f64::from)
}

/// The stand-in widths of a standard font named without its own.
fn standard(base_font: &[u8]) -> Widths {
    let name = String::from_utf8_lossy(base_font);
    // A subset's name starts with six capitals and a plus.
    let name = name.split_once('+').map_or(&*name, |(_, n)| n);
    let table: &[u16; 95] = if name.starts_with("Courier") {
        &[600; 95]
    } else if name.starts_with("Helvetica") || name.starts_with("Arial") {
        &HELVETICA
    } else if name.starts_with("Times") {
        &TIMES
    } else {
        return Widths::Unknown;
    };
    let widths = table.iter().map(|&w| f64::from(w) / 1000.0).collect();
    Widths::Simple { first: 32, widths, missing: 0.5, exact: false }
}

/// Helvetica's widths for codes 32–126 (Adobe's metrics).
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 222, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 222, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// Times-Roman's widths for codes 32–126 (Adobe's metrics).
const TIMES: [u16; 95] = [
    250, 333, 408, 500, 500, 833, 778, 333, 333, 333, 500, 564, 250, 333, 250, 278, 500, 500, 500, 500, 500, 500, 500,
    500, 500, 500, 278, 278, 564, 564, 564, 444, 921, 722, 667, 667, 722, 611, 556, 722, 722, 333, 389, 722, 611, 889,
    722, 722, 556, 722, 667, 556, 611, 722, 722, 944, 722, 722, 611, 333, 278, 333, 469, 500, 333, 444, 500, 444, 500,
    444, 333, 500, 500, 278, 278, 500, 278, 778, 500, 500, 500, 500, 333, 389, 278, 500, 500, 722, 500, 500, 444, 480,
    200, 480, 541,
];
