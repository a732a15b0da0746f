//! A page's text in the order it is drawn, with spaces and line breaks put where the
//! glyphs fall. lopdf's own text walk writes the strings one after another and breaks a
//! line at each text object's end: a word that ends one object or font and the word that
//! starts the next ran together ("REGISTERcontains") whenever the gap between them was a
//! move rather than a space character, and a line drawn as several objects was broken
//! into several. This walk follows the text and graphics matrices, measures each string
//! with its font's widths (`pdf_fonts`), and compares where the next string starts with
//! where the last one ended: a step across the line is a line break, a gap along it of
//! more than [`SPACE_EM`] of the font size a space. A kern or a word split by a move (some
//! generators position every few glyphs) stays joined.
//!
//! A `TJ` offset wider than [`SPACE_EM`] is a space whatever the font. A font whose widths
//! are unknown falls back to lopdf's rules for where its strings end: a space after a `TJ`
//! array, a line break at the text object's end.

use std::collections::BTreeMap;

use lopdf::{
    Dictionary, Document, Encoding, Object, ObjectId, Stream,
    content::{Content, Operation},
};

use super::pdf_fonts::{Widths, number, resolve};

/// A gap along the line wider than this share of the font size is a space. A word space
/// is a quarter to a third of an em; kerning and glyph positioning stay well under.
const SPACE_EM: f64 = 0.15;

/// A step across the line of more than this share of the font size is a new line
/// (superscripts and subscripts move less).
const LINE_EM: f64 = 0.6;

/// A step across the line of more than this share of the font size, but not a new line,
/// is a superscript or a subscript: written apart from the word before it.
const RAISED_EM: f64 = 0.25;

/// Graphics states saved (`q`) and not yet restored, at most.
const MAX_SAVED_STATES: usize = 1024;

/// Forms drawn inside forms, at most.
const MAX_FORM_DEPTH: usize = 12;

/// Forms one page may draw (a form drawn twice by each of the forms that draw it doubles
/// at every level).
const MAX_FORMS_DRAWN: usize = 10_000;

/// Operations one page may run, its forms' included.
const MAX_OPERATIONS: usize = 4_000_000;

/// A 2-D affine matrix `[a b c d e f]`, applied to row vectors as PDF does.
#[derive(Debug, Clone, Copy)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn translate(x: f64, y: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, x, y])
    }

    /// `self × other`: `self` applied first.
    fn then(self, other: Matrix) -> Matrix {
        let ([a, b, c, d, e, f], [a2, b2, c2, d2, e2, f2]) = (self.0, other.0);
        Matrix([
            a * a2 + b * c2,
            a * b2 + b * d2,
            c * a2 + d * c2,
            c * b2 + d * d2,
            e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2,
        ])
    }

    fn origin(self) -> (f64, f64) {
        (self.0[4], self.0[5])
    }

    /// A vector (not a point) through the matrix.
    fn vector(self, x: f64, y: f64) -> (f64, f64) {
        (x * self.0[0] + y * self.0[2], x * self.0[1] + y * self.0[3])
    }
}

/// Where the last string ended, in device space.
#[derive(Debug, Clone, Copy)]
struct End {
    at: (f64, f64),
    /// The direction of the line (unit vector).
    along: (f64, f64),
    /// The font size in device space.
    size: f64,
    /// How far off the end may be when the widths were stand-ins.
    slack: f64,
}

struct Font<'a> {
    encoding: Option<Encoding<'a>>,
    widths: Widths,
}

#[derive(Default)]
struct Walk {
    text: String,
    /// The last string's end, when its font's widths were known.
    end: Option<End>,
    /// lopdf's rule for a string of unknown widths: a break at the text object's end.
    break_pending: bool,
    failure: Option<String>,
    /// The forms being drawn, outermost first.
    forms: Vec<ObjectId>,
    /// What is left of the page's budget of operations, its forms' included.
    budget: usize,
    /// Forms drawn on the page so far.
    drawn: usize,
    /// The most decompressed bytes of one content stream or `ToUnicode` map.
    limit: usize,
}

/// The text state that `Tc`, `Tw`, `Tz`, `TL` and `Tf` set.
#[derive(Clone, Copy)]
struct State {
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
    size: f64,
}

/// The text of page `page`, and the first thing on it that could not be read, if any.
/// `limit` bounds each decompressed content stream (the page's and each form's) and each
/// font's `ToUnicode` map.
pub(super) fn page_text(document: &Document, page: ObjectId, limit: usize) -> (String, Option<String>) {
    let mut walk = Walk { budget: MAX_OPERATIONS, limit, ..Walk::default() };
    let fonts = match document.get_page_fonts(page) {
        Ok(fonts) => walk.fonts(document, fonts),
        Err(e) => return (String::new(), Some(e.to_string())),
    };
    let resources: Vec<&Dictionary> = match document.get_page_resources(page) {
        Ok((own, inherited)) => {
            own.into_iter().chain(inherited.into_iter().filter_map(|id| document.get_dictionary(id).ok())).collect()
        }
        Err(_) => Vec::new(),
    };
    let content = match document.get_page_content_with_limit(page, limit).and_then(|data| Content::decode(&data)) {
        Ok(content) => content,
        Err(e) => return (String::new(), Some(e.to_string())),
    };
    walk.budget = walk.budget.saturating_sub(content.operations.len());
    let state = State { char_spacing: 0.0, word_spacing: 0.0, scale: 1.0, leading: 0.0, size: 0.0 };
    walk.run(document, &content.operations, (&fonts, &resources), Matrix::IDENTITY, state);
    (walk.text, walk.failure)
}

/// A page's or a form's fonts by resource name, and the resource dictionaries its
/// `Do` names are looked up in.
type Resources<'r, 'a> = (&'r BTreeMap<Vec<u8>, Font<'a>>, &'r [&'a Dictionary]);

/// The form XObject `name` of `resources`, if it is one.
fn find_form<'a>(document: &'a Document, resources: &[&'a Dictionary], name: &[u8]) -> Option<(ObjectId, &'a Stream)> {
    resources.iter().find_map(|r| {
        let xobjects = resolve(document, r.get(b"XObject").ok()?)?.as_dict().ok()?;
        let (id, object) = document.dereference(xobjects.get(name).ok()?).ok()?;
        let stream = object.as_stream().ok()?;
        let form = stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Form");
        form.then_some((id?, stream))
    })
}

impl Walk {
    /// Walks `operations`, drawn through `ctm`, in the text state `state`.
    fn run<'a>(
        &mut self,
        document: &'a Document,
        operations: &[Operation],
        (fonts, resources): Resources<'_, 'a>,
        ctm: Matrix,
        state: State,
    ) {
        let (mut ctm, mut state) = (ctm, state);
        let mut saved = Vec::new();
        let (mut tm, mut line) = (Matrix::IDENTITY, Matrix::IDENTITY);
        let mut font: Option<&Font> = None;
        for op in operations {
            let num = |i: usize| op.operands.get(i).and_then(|o| o.as_float().ok()).map_or(0.0, f64::from);
            let six = || Matrix([num(0), num(1), num(2), num(3), num(4), num(5)]);
            match op.operator.as_str() {
                // Deeper nesting than any renderer allows is not kept (a hostile stream
                // of `q`s would otherwise grow the stack with the content).
                "q" if saved.len() < MAX_SAVED_STATES => saved.push((ctm, state, font)),
                "Q" => (ctm, state, font) = saved.pop().unwrap_or((ctm, state, font)),
                "cm" => ctm = six().then(ctm),
                "BT" => (tm, line) = (Matrix::IDENTITY, Matrix::IDENTITY),
                "ET" => self.break_pending = true,
                "Tf" => {
                    font = op.operands.first().and_then(|o| o.as_name().ok()).and_then(|n| fonts.get(n));
                    state.size = num(1);
                }
                "Tc" => state.char_spacing = num(0),
                "Tw" => state.word_spacing = num(0),
                "Tz" => state.scale = num(0) / 100.0,
                "TL" => state.leading = num(0),
                "Td" | "TD" => {
                    if op.operator == "TD" {
                        state.leading = -num(1);
                    }
                    line = Matrix::translate(num(0), num(1)).then(line);
                    tm = line;
                }
                "Tm" => {
                    line = six();
                    tm = line;
                }
                "T*" | "'" | "\"" => {
                    line = Matrix::translate(0.0, -state.leading).then(line);
                    tm = line;
                    if op.operator == "'" {
                        self.show(font, &state, &mut tm, ctm, op.operands.first());
                    } else if op.operator == "\"" {
                        state.word_spacing = num(0);
                        state.char_spacing = num(1);
                        self.show(font, &state, &mut tm, ctm, op.operands.get(2));
                    }
                }
                "Tj" => self.show(font, &state, &mut tm, ctm, op.operands.first()),
                "TJ" => {
                    let Some(Ok(items)) = op.operands.first().map(Object::as_array) else { continue };
                    for item in items {
                        match item {
                            Object::String(..) => self.show(font, &state, &mut tm, ctm, Some(item)),
                            number => self.kern(font, &state, &mut tm, number.as_float().map_or(0.0, f64::from)),
                        }
                    }
                    if font.is_some_and(|f| matches!(f.widths, Widths::Unknown)) {
                        self.separate(' ');
                    }
                }
                "Do" => {
                    let name = op.operands.first().and_then(|o| o.as_name().ok());
                    if let Some((id, form)) = name.and_then(|n| find_form(document, resources, n)) {
                        self.draw_form(document, id, form, ctm, state, (fonts, resources));
                    }
                }
                _ => {}
            }
        }
    }

    /// Draws the form `id` as `Do` does: through its matrix, with its own resources (the
    /// page's when it has none). A form drawn inside itself, nesting past [`MAX_FORM_DEPTH`],
    /// past [`MAX_FORMS_DRAWN`] or past the page's budget of operations is skipped, noted.
    fn draw_form<'a>(
        &mut self,
        document: &'a Document,
        id: ObjectId,
        form: &'a Stream,
        ctm: Matrix,
        state: State,
        (fonts, resources): Resources<'_, 'a>,
    ) {
        if self.drawn >= MAX_FORMS_DRAWN {
            self.failure.get_or_insert_with(|| format!("the page draws more than {MAX_FORMS_DRAWN} forms"));
            return;
        }
        self.drawn += 1;
        if self.forms.contains(&id) || self.forms.len() >= MAX_FORM_DEPTH {
            self.failure.get_or_insert_with(|| format!("form {} {} is nested too deep or in itself", id.0, id.1));
            return;
        }
        let operations = match form.get_plain_content_with_limit(self.limit).and_then(|data| Content::decode(&data)) {
            Ok(content) if content.operations.len() <= self.budget => content.operations,
            Ok(_) => {
                self.failure.get_or_insert_with(|| "the page's forms draw more than it may read".into());
                return;
            }
            Err(e) => {
                self.failure.get_or_insert_with(|| format!("form {} {}: {e}", id.0, id.1));
                return;
            }
        };
        self.budget -= operations.len();
        let matrix = form
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|m| resolve(document, m)?.as_array().ok())
            .map(|m| m.iter().filter_map(|n| number(document, n)).collect::<Vec<_>>())
            .and_then(|m| <[f64; 6]>::try_from(m).ok())
            .map_or(Matrix::IDENTITY, Matrix);
        let own = form.dict.get(b"Resources").ok().and_then(|r| resolve(document, r)?.as_dict().ok());
        self.forms.push(id);
        match own {
            Some(own) => {
                let fonts = own
                    .get(b"Font")
                    .ok()
                    .and_then(|f| resolve(document, f)?.as_dict().ok())
                    .map(|f| {
                        let fonts = f
                            .iter()
                            .filter_map(|(name, font)| Some((name.clone(), resolve(document, font)?.as_dict().ok()?)));
                        self.fonts(document, fonts.collect())
                    })
                    .unwrap_or_default();
                self.run(document, &operations, (&fonts, &[own]), matrix.then(ctm), state);
            }
            None => self.run(document, &operations, (fonts, resources), matrix.then(ctm), state),
        }
        self.forms.pop();
    }

    /// `fonts` with their encodings and widths; an encoding that cannot be read is noted.
    fn fonts<'a>(
        &mut self,
        document: &'a Document,
        fonts: BTreeMap<Vec<u8>, &'a Dictionary>,
    ) -> BTreeMap<Vec<u8>, Font<'a>> {
        fonts
            .into_iter()
            .map(|(name, font)| {
                let encoding = font.get_font_encoding_with_limit(document, self.limit).map_err(|e| e.to_string());
                let encoding = encoding.map_err(|e| self.failure.get_or_insert(e).clone()).ok();
                (name, Font { encoding, widths: Widths::of(document, font) })
            })
            .collect()
    }

    /// Shows one string: places it after the last one, writes its text, moves the pen.
    fn show(&mut self, font: Option<&Font>, state: &State, tm: &mut Matrix, ctm: Matrix, string: Option<&Object>) {
        let (Some(font), Some(Object::String(bytes, _))) = (font, string) else { return };
        let device = tm.then(ctm);
        let advance = font.widths.advance(bytes);
        match (self.end, &advance) {
            (Some(end), Some(_)) => self.place(end, device),
            _ if self.break_pending => self.separate('\n'),
            _ => {}
        }
        self.break_pending = false;
        if let Some(encoding) = &font.encoding
            && let Err(e) = encoding.write_to_string(bytes, &mut self.text)
        {
            self.failure.get_or_insert_with(|| e.to_string());
        }
        let Some(advance) = advance else {
            self.end = None;
            return;
        };
        let width = (advance.glyphs * state.size
            + advance.codes as f64 * state.char_spacing
            + advance.spaces as f64 * state.word_spacing)
            * state.scale;
        *tm = Matrix::translate(width, 0.0).then(*tm);
        let device_end = tm.then(ctm);
        let (ax, ay) = device.vector(1.0, 0.0);
        let length = ax.hypot(ay);
        let (sx, sy) = device.vector(0.0, state.size);
        let size = sx.hypot(sy);
        if length <= f64::EPSILON || size <= f64::EPSILON {
            self.end = None;
            return;
        }
        let slack = if font.widths.exact() { 0.0 } else { 0.1 * width.abs() * length };
        self.end = Some(End { at: device_end.origin(), along: (ax / length, ay / length), size, slack });
    }

    /// A `TJ` offset: moves the pen back by `thousandths` of the font size.
    fn kern(&mut self, font: Option<&Font>, state: &State, tm: &mut Matrix, thousandths: f64) {
        *tm = Matrix::translate(-thousandths / 1000.0 * state.size * state.scale, 0.0).then(*tm);
        // An offset is exact where a measured end may not be (a standard font's stand-in
        // widths): one of a word space's size parts words whatever the font.
        if font.is_some() && thousandths < -SPACE_EM * 1000.0 {
            self.separate(' ');
        }
    }

    /// A line break or a space between the string that ended at `end` and the one that
    /// starts at `start`'s origin, by where the second falls.
    fn place(&mut self, end: End, start: Matrix) {
        let (x, y) = start.origin();
        let (dx, dy) = (x - end.at.0, y - end.at.1);
        let along = dx * end.along.0 + dy * end.along.1;
        let across = dy * end.along.0 - dx * end.along.1;
        if across.abs() > LINE_EM * end.size {
            self.separate('\n');
        } else if along > SPACE_EM * end.size + end.slack
            || along < -(end.size + end.slack)
            || across.abs() > RAISED_EM * end.size
        {
            // Far back along the same line is another column or a cell drawn later; a
            // raised or lowered string is a footnote mark or an index, not the word's end.
            self.separate(' ');
        }
    }

    /// Writes `separator` unless the text already ends with white space (a line break
    /// replaces a space).
    fn separate(&mut self, separator: char) {
        match self.text.chars().next_back() {
            None | Some('\n') => {}
            Some(' ') if separator == '\n' => {
                self.text.pop();
                self.text.push('\n');
            }
            Some(c) if c.is_whitespace() => {}
            Some(_) => self.text.push(separator),
        }
    }
}

#[cfg(test)]
mod tests {
    use lopdf::{Document, Object, Stream, dictionary};

    use super::page_text;
    use crate::knowledge::extract::corpus;

    /// A one-page PDF drawing `content` with `/F1`: a font whose every glyph is half an em
    /// wide, or Helvetica named without widths when `widths` is false.
    fn page(content: &str, widths: bool) -> String {
        let (text, failure) = page_with_form(content, widths, None);
        assert_eq!(failure, None);
        text
    }

    /// [`page`], with `/Fm1` a form XObject drawing `form` (in the page's fonts, through
    /// the matrix `[1 0 0 1 0 -100]`).
    fn page_with_form(content: &str, widths: bool, form: Option<&str>) -> (String, Option<String>) {
        let mut document = Document::with_version("1.7");
        let form_id = document.new_object_id();
        let mut font = dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" };
        if widths {
            font.set("FirstChar", 32);
            font.set("Widths", Object::Array(vec![Object::Integer(500); 95]));
        }
        let font = document.add_object(font);
        let content = document.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
        let pages = document.new_object_id();
        let mut resources = dictionary! { "Font" => dictionary! { "F1" => font } };
        if let Some(form) = form {
            let dict = dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "Matrix" => vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into(), (-100).into()],
            };
            document.objects.insert(form_id, Object::Stream(Stream::new(dict, form.as_bytes().to_vec())));
            resources.set("XObject", dictionary! { "Fm1" => form_id });
        }
        let page = document.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages, "Contents" => content, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 600.into(), 800.into()],
        });
        document.objects.insert(
            pages,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }),
        );
        page_text(&document, page, 1 << 20)
    }

    #[test]
    fn a_form_draws_its_text_where_its_matrix_puts_it() {
        let form = "BT /F1 10 Tf 100 700 Td (below) Tj ET";
        let (text, failure) = page_with_form("BT /F1 10 Tf 100 700 Td (above) Tj ET /Fm1 Do", true, Some(form));
        assert_eq!((text.as_str(), failure), ("above\nbelow", None));
        let (text, failure) = page_with_form("/Fm1 Do", true, Some("BT /F1 10 Tf 100 700 Td (again) Tj ET /Fm1 Do"));
        assert_eq!(text, "again", "a form drawing itself is drawn once");
        assert!(failure.is_some_and(|f| f.contains("in itself")));
    }

    #[test]
    fn words_are_parted_by_where_they_fall() {
        // "Sub" is 15 units wide at size 10: a move of 17.5 leaves a quarter-em gap.
        let moved = "BT /F1 10 Tf 100 700 Td (Sub) Tj ET BT /F1 10 Tf 117.5 700 Td (ject) Tj ET";
        assert_eq!(page(moved, true), "Sub ject");
        let kerned = "BT /F1 10 Tf 100 700 Td (Sub) Tj 15.4 0 Td (ject) Tj ET";
        assert_eq!(page(kerned, true), "Subject", "a move under the space threshold is a kern");
        let next_line = "BT /F1 10 Tf 100 700 Td (one) Tj 0 -12 Td (two) Tj ET";
        assert_eq!(page(next_line, true), "one\ntwo");
        let offsets = "BT /F1 10 Tf 100 700 Td [(Sub) -80 (ject) -300 (line)] TJ ET";
        assert_eq!(page(offsets, true), "Subject line", "TJ offsets: a kern, then a word space");
        let scaled = "BT /F1 1 Tf 10 0 0 10 100 700 Tm (Sub) Tj 10 0 0 10 117.5 700 Tm (ject) Tj ET";
        assert_eq!(page(scaled, true), "Sub ject", "the text matrix scales the font");
        let raised = "BT /F1 10 Tf 100 700 Td (750) Tj 15 4 Td /F1 6 Tf (1) Tj ET";
        assert_eq!(page(raised, true), "750 1", "a footnote mark is not part of the number");
        let spaced = "BT /F1 10 Tf 100 700 Td (a ) Tj 20 0 Td (b) Tj ET";
        assert_eq!(page(spaced, true), "a b", "no second space");
    }

    #[test]
    fn a_standard_font_is_measured_by_its_stand_in_widths() {
        let moved = "BT /F1 10 Tf 100 700 Td (REGISTER) Tj ET BT /F1 10 Tf 162 700 Td (contains) Tj ET";
        assert_eq!(page(moved, false), "REGISTER contains");
    }

    #[test]
    fn real_documents_part_their_words() {
        let document = Document::load_mem(&corpus("real/pdf/pr-00530-ml-lines.pdf")).unwrap();
        let first = *document.get_pages().get(&1).unwrap();
        let (text, _) = page_text(&document, first, 1 << 26);
        assert!(text.starts_with("This section of the FEDERAL REGISTER\ncontains notices"), "{text}");
        assert!(text.contains("Proposed Rules Federal Register\n47698\n"), "{text}");
        let document = Document::load_mem(&corpus("real/pdf/simple1.pdf")).unwrap();
        let first = *document.get_pages().get(&1).unwrap();
        let (text, _) = page_text(&document, first, 1 << 26);
        assert!(text.starts_with("Hello World\nHello World\nHello World\n"), "{text}");
    }
}
