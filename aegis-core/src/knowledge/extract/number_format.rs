//! Excel number formats (the `numFmt` codes of a workbook's cell styles), applied to the
//! numbers of a sheet so that a cell reads as Excel shows it: `12.5%`, `$1,234.50`,
//! `(1,234)`, `€ 99`, `1.23E+05`, `4.2 kg`. A share written `0.125` or an amount without its
//! currency loses what the reader of the sheet sees, and what an answer should quote.
//!
//! Dates and times are not handled here: calamine recognises their formats itself and
//! gives date cells, which are written as ISO dates. A format this reader does not follow
//! (fractions, conditions such as `[>100]`, digits with text between them such as
//! `000-00-0000`, date parts on a number) is [`None`]: its numbers are written as in a
//! General cell, as before formats were read.

/// A parsed number format: one to three sections (positive, negative, zero).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NumberFormat {
    sections: Vec<FormatSection>,
}

/// One `;`-separated section of a format code.
#[derive(Debug, Clone, PartialEq, Default)]
struct FormatSection {
    /// Literal text before the first digit.
    prefix: String,
    /// Literal text after the last digit (a `%` included).
    suffix: String,
    /// How the number itself is written; `None` for a section of literal text only.
    digits: Option<Digits>,
}

/// The digit placeholders of a section.
#[derive(Debug, Clone, PartialEq, Default)]
struct Digits {
    /// `General`: the number as in a General cell.
    general: bool,
    /// `0` placeholders before the decimal point: the least number of integer digits.
    min_integer: usize,
    /// `0` placeholders after the point: decimals always written.
    min_decimals: usize,
    /// Every placeholder after the point (`0`, `#`, `?`): decimals at most.
    max_decimals: usize,
    /// The code has a decimal point, written even with no decimals after it (`0.##` shows
    /// 42 as `42.`, as Excel does).
    point: bool,
    /// A thousands separator between the integer placeholders.
    grouped: bool,
    /// The power of ten the value is multiplied by: +2 for each `%`, -3 for each comma
    /// after the last placeholder.
    scale: i32,
    /// Scientific notation: (integer placeholders of the mantissa, exponent digits, `E+`).
    exponent: Option<(usize, usize, bool)>,
    /// A placeholder was met (text from now on is after a digit).
    placed: bool,
}

impl NumberFormat {
    /// The format of `code`, or `None` for General, for a date or time format, and for
    /// one this reader does not follow (see the module's doc).
    pub fn parse(code: &str) -> Option<Self> {
        // Excel's own limit on a code's length (a longer one is no workbook's).
        if code.eq_ignore_ascii_case("general") || code.is_empty() || code == "@" || code.len() > 255 {
            return None;
        }
        let pieces = split_sections(code);
        // A fourth section formats text, which is written as it is.
        let sections = pieces.iter().take(3).map(|piece| parse_section(piece)).collect::<Option<Vec<_>>>()?;
        // General in each section, or nothing at all: `;;;` hides a cell's value in Excel,
        // but hidden content is read (as hidden sheets and slides are), so it stays General.
        if sections
            .iter()
            .all(|s| s.digits.as_ref().is_none_or(|d| d.general) && s.prefix.is_empty() && s.suffix.is_empty())
        {
            return None;
        }
        Some(Self { sections })
    }

    /// `value` as this format shows it.
    pub fn format(&self, value: f64) -> String {
        let (section, magnitude, minus) = match (self.sections.as_slice(), value) {
            ([_, negative, ..], v) if v < 0.0 => (negative, -v, false),
            ([_, _, zero, ..], v) if v == 0.0 => (zero, v, false),
            ([first, ..], v) => (first, v.abs(), v < 0.0),
            ([], v) => return super::xlsx::number_text(v),
        };
        let mut out = String::with_capacity(section.prefix.len() + section.suffix.len() + 16);
        // A negative number in a format of one section keeps its minus sign (Excel shows
        // `-0.00` for -0.001 in `0.00`).
        if minus {
            out.push('-');
        }
        out.push_str(&section.prefix);
        if let Some(digits) = &section.digits {
            out.push_str(&digits.write(magnitude));
        }
        out.push_str(&section.suffix);
        // The spaces some codes end with (`#,##0 ;(#,##0)`) only align a column.
        // A section that writes nothing (`0;;`, `#,###` on 0) hides the value in Excel;
        // hidden content is read, so it is written as in a General cell.
        match out.trim() {
            "" | "-" => super::xlsx::number_text(value),
            shown => shown.to_owned(),
        }
    }
}

impl Digits {
    /// A non-negative `value` through these placeholders.
    fn write(&self, value: f64) -> String {
        if self.general {
            return super::xlsx::number_text(value);
        }
        let value = value * 10f64.powi(self.scale);
        if let Some((integer_places, exponent_digits, plus)) = self.exponent {
            return self.write_scientific(value, integer_places.max(1), exponent_digits, plus);
        }
        let (integer, fraction) = rounded(value, self.max_decimals);
        let mut out = self.integer_part(&integer);
        if self.point {
            out.push('.');
            out.push_str(trimmed_fraction(&fraction, self.min_decimals));
        }
        out
    }

    /// The integer digits padded to `min_integer` and grouped by thousands if asked.
    fn integer_part(&self, integer: &str) -> String {
        let integer = integer.trim_start_matches('0');
        let padding = self.min_integer.saturating_sub(integer.len());
        let digits: String = "0".repeat(padding) + integer;
        if !self.grouped || digits.len() <= 3 {
            return digits;
        }
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        out
    }

    /// `1.23E+05`; with several integer places (`##0.0E+0`) the exponent is a multiple of
    /// their number (engineering notation).
    fn write_scientific(&self, value: f64, integer_places: usize, exponent_digits: usize, plus: bool) -> String {
        let places = i32::try_from(integer_places).unwrap_or(1);
        let mut exponent = if value == 0.0 { 0 } else { value.log10().floor() as i32 };
        if places > 1 {
            exponent = exponent.div_euclid(places) * places;
        }
        let mut mantissa = value / 10f64.powi(exponent);
        let (mut integer, mut fraction) = rounded(mantissa, self.max_decimals);
        // Rounding can carry the mantissa to the next power of ten: 9.99 → 10.0.
        if integer.trim_start_matches('0').len() > integer_places.max(1) {
            exponent += places;
            mantissa = value / 10f64.powi(exponent);
            (integer, fraction) = rounded(mantissa, self.max_decimals);
        }
        let mut out =
            Digits { min_integer: self.min_integer.max(1), grouped: false, ..Digits::default() }.integer_part(&integer);
        let fraction = trimmed_fraction(&fraction, self.min_decimals);
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
        out.push('E');
        match (exponent < 0, plus) {
            (true, _) => out.push('-'),
            (false, true) => out.push('+'),
            (false, false) => {}
        }
        let digits = exponent.unsigned_abs().to_string();
        out.push_str(&"0".repeat(exponent_digits.saturating_sub(digits.len())));
        out.push_str(&digits);
        out
    }
}

/// The fraction's digits with its optional (`#`) trailing zeros removed.
fn trimmed_fraction(fraction: &str, min_decimals: usize) -> &str {
    let significant = fraction.trim_end_matches('0').len().max(min_decimals);
    &fraction[..significant.min(fraction.len())]
}

/// A non-negative `value` rounded half away from zero to `decimals` places, as its integer
/// and fraction digits. It is rounded from its 15 significant digits, as Excel does, so
/// that 2.675 shows `2.68` (its nearest double is 2.67499…).
fn rounded(value: f64, decimals: usize) -> (String, String) {
    let scientific = format!("{value:.14e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // The decimal point sits after `point` digits.
    let mut point = exponent + 1;
    if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        digits.splice(0..0, std::iter::repeat_n(b'0', zeros));
        point = 0;
    }
    let point = usize::try_from(point).unwrap_or(0);
    if digits.len() < point {
        digits.resize(point, b'0');
    }
    let keep = point + decimals;
    if keep < digits.len() {
        let round_up = digits[keep] >= b'5';
        digits.truncate(keep);
        if round_up {
            let mut i = keep;
            loop {
                if i == 0 {
                    digits.insert(0, b'1');
                    return split_at_point(digits, point + 1);
                }
                i -= 1;
                if digits[i] == b'9' {
                    digits[i] = b'0';
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
    } else {
        digits.resize(keep, b'0');
    }
    split_at_point(digits, point)
}

fn split_at_point(mut digits: Vec<u8>, point: usize) -> (String, String) {
    let fraction = digits.split_off(point.min(digits.len()));
    (String::from_utf8(digits).unwrap_or_default(), String::from_utf8(fraction).unwrap_or_default())
}

/// The code's sections, split at each `;` outside quotes, brackets and escapes.
fn split_sections(code: &str) -> Vec<&str> {
    let mut sections = Vec::new();
    let (mut start, mut quoted, mut bracketed, mut escaped) = (0, false, false, false);
    for (i, c) in code.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '"' => quoted = !quoted,
            '\\' | '_' | '*' if !quoted && !bracketed => escaped = true,
            '[' if !quoted => bracketed = true,
            ']' if !quoted => bracketed = false,
            ';' if !quoted && !bracketed => {
                sections.push(&code[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    sections.push(&code[start..]);
    sections
}

/// One section, or `None` when it is one this reader does not follow.
fn parse_section(code: &str) -> Option<FormatSection> {
    let mut section = FormatSection::default();
    let mut digits: Option<Digits> = None;
    // Literal text met after a digit, not yet known to end the number.
    let mut pending = String::new();
    let (mut after_point, mut trailing_commas, mut percents) = (false, 0, 0);
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    pending.push(c);
                }
            }
            '\\' => pending.extend(chars.next()),
            // A space the width of the next character, and a fill of it: neither is text.
            '_' | '*' => {
                chars.next();
            }
            '[' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                pending.push_str(bracketed(&inner)?);
            }
            '0' | '#' | '?' => {
                let d = digits.get_or_insert_with(Digits::default);
                if d.general || (!pending.is_empty() && d.exponent.is_none() && has_placed(d)) {
                    // Digits on both sides of text (`000-0000`): not followed.
                    return None;
                }
                if d.exponent.is_some() {
                    if let Some((_, exponent_digits, _)) = d.exponent.as_mut() {
                        *exponent_digits += 1;
                    }
                    continue;
                }
                flush_prefix(&mut section, &mut pending);
                d.placed = true;
                if trailing_commas > 0 {
                    d.grouped = true;
                    trailing_commas = 0;
                }
                if after_point {
                    d.max_decimals += 1;
                    d.min_decimals += usize::from(c == '0' && d.min_decimals + 1 == d.max_decimals);
                } else {
                    d.min_integer += usize::from(c == '0');
                }
            }
            '.' if digits.as_ref().is_some_and(|d| d.exponent.is_none())
                || matches!(chars.peek(), Some('0' | '#' | '?')) =>
            {
                if after_point {
                    return None;
                }
                let d = digits.get_or_insert_with(Digits::default);
                if !pending.is_empty() && has_placed(d) {
                    return None;
                }
                flush_prefix(&mut section, &mut pending);
                after_point = true;
                d.point = true;
            }
            ',' if digits.is_some() && pending.is_empty() => trailing_commas += 1,
            // Wherever it stands (`%0` too), a percent sign multiplies by 100.
            '%' => {
                percents += 1;
                pending.push('%');
            }
            'E' | 'e' if digits.is_some() && matches!(chars.peek(), Some('+' | '-')) => {
                let plus = chars.next() == Some('+');
                let d = digits.get_or_insert_with(Digits::default);
                let places = d.min_integer.max(scientific_places(code));
                d.exponent = Some((places, 0, plus));
            }
            '/' if digits.is_some() => return None,
            '@' => return None,
            _ if c.is_ascii_alphabetic() => {
                let rest: String = std::iter::once(c).chain(chars.clone().take(6)).collect();
                if rest.eq_ignore_ascii_case("general") {
                    chars.nth(5);
                    flush_prefix(&mut section, &mut pending);
                    digits = Some(Digits { general: true, ..Digits::default() });
                } else if matches!(c.to_ascii_lowercase(), 'y' | 'm' | 'd' | 'h' | 's' | 'a' | 'b' | 'g' | 'e') {
                    // Date and time parts (and AM/PM, Buddhist and era years).
                    return None;
                } else {
                    pending.push(c);
                }
            }
            _ => pending.push(c),
        }
    }
    if let Some(d) = digits.as_mut() {
        d.scale += 2 * percents - 3 * trailing_commas;
        // Excel allows no more than 30 decimals; placeholders past that are a hostile code.
        if d.max_decimals > 30 || d.min_integer > 30 {
            return None;
        }
    }
    match digits {
        Some(d) => {
            section.digits = Some(d);
            section.suffix = pending;
        }
        None => section.prefix = pending,
    }
    Some(section)
}

/// Whether a placeholder was already met (so text now would sit between digits).
fn has_placed(d: &Digits) -> bool {
    d.placed || d.general
}

/// The number of integer placeholders before the point of a scientific code (`##0.0E+0`: 3).
fn scientific_places(code: &str) -> usize {
    let mantissa = code.split(['E', 'e']).next().unwrap_or("");
    let integer = mantissa.split('.').next().unwrap_or("");
    integer.chars().filter(|c| matches!(c, '0' | '#' | '?')).count()
}

/// Moves literal text met before the first digit into the prefix.
fn flush_prefix(section: &mut FormatSection, pending: &mut String) {
    section.prefix.push_str(pending);
    pending.clear();
}

/// What a bracketed part of a code adds to the text: a currency (`[$€-407]` → `€`), or
/// nothing (a colour, a locale `[$-409]`); `None` for a condition or an elapsed time.
fn bracketed(inner: &str) -> Option<&str> {
    if let Some(currency) = inner.strip_prefix('$') {
        return Some(currency.split('-').next().unwrap_or(""));
    }
    let lower = inner.to_ascii_lowercase();
    let is_colour = ["black", "blue", "cyan", "green", "magenta", "red", "white", "yellow"].contains(&lower.as_str())
        || lower.strip_prefix("color").is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    is_colour.then_some("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(code: &str, value: f64) -> String {
        NumberFormat::parse(code).map_or_else(|| format!("general {value}"), |f| f.format(value))
    }

    #[test]
    fn numbers_read_as_their_formats_show_them() {
        let cases: &[(&str, f64, &str)] = &[
            ("0", 3.7, "4"),
            ("0.00", 2.675, "2.68"),
            ("0.00", 0.30000000000000004, "0.30"),
            ("#,##0", 1234567.4, "1,234,567"),
            ("#,##0.00", -1234.5, "-1,234.50"),
            ("#,##0.00", 0.004, "0.00"),
            ("0%", 0.125, "13%"),
            ("0.0%", 0.125, "12.5%"),
            ("0.00%", -0.0004, "-0.04%"),
            ("#,##0 ;(#,##0)", -1234.0, "(1,234)"),
            ("#,##0 ;(#,##0)", 1234.0, "1,234"),
            ("\"$\"#,##0.00", 1234.5, "$1,234.50"),
            ("[$€-407] #,##0.00", 99.0, "€ 99.00"),
            ("#,##0.00 [$€-1]", 99.0, "99.00 €"),
            ("[$-409]#,##0", 5.0, "5"),
            ("[Red]0.00;[Blue]-0.00", -2.0, "-2.00"),
            ("_($* #,##0.00_);_($* (#,##0.00);_($* \"-\"??_);_(@_)", 1234.5, "$1,234.50"),
            ("_($* #,##0.00_);_($* (#,##0.00);_($* \"-\"??_);_(@_)", -1234.5, "$(1,234.50)"),
            ("_($* #,##0.00_);_($* (#,##0.00);_($* \"-\"??_);_(@_)", 0.0, "$-"),
            ("0.00E+00", 123456.0, "1.23E+05"),
            ("0.00E+00", 0.000123, "1.23E-04"),
            ("0.00E+00", 9.999, "1.00E+01"),
            ("##0.0E+0", 123456.0, "123.5E+3"),
            ("0.0 \"kg\"", 4.25, "4.3 kg"),
            ("#,##0,\"k\"", 1234567.0, "1,235k"),
            ("0.##", 1.5, "1.5"),
            ("0.##", 2.0, "2."),
            ("#,##0.", 1234.5, "1,235."),
            ("0.0??", 0.125, "0.125"),
            ("00.00", 1.0, "01.00"),
            ("0.00E-00", 1.0, "1.00E00"),
            ("0", -2.5, "-3"),
            ("0%", -0.004, "-0%"),
            ("#.00", 0.5, ".50"),
            ("000", 7.0, "007"),
            ("\"Total: \"General", 12.5, "Total: 12.5"),
            ("0;-0;\"zero\"", 0.0, "zero"),
            ("%0", 0.5, "%50"),
            ("0;;", -5.0, "-5"),
            ("0;-0;;@", 0.0, "0"),
            ("#,###", 0.0, "0"),
            ("0.00", -0.001, "-0.00"),
        ];
        for (code, value, want) in cases {
            assert_eq!(&shown(code, *value), want, "{code} on {value}");
        }
    }

    #[test]
    fn formats_not_followed_leave_the_number_general() {
        let (long, decimals) = ("0".repeat(300), format!("0.{}", "0".repeat(40)));
        for code in [
            "General",
            "@",
            "",
            "yyyy-mm-dd",
            "h:mm AM/PM",
            "[h]:mm:ss",
            "# ?/?",
            "[>100]0;0.0",
            "000-00-0000",
            "#-#0",
            ";;;",
            long.as_str(),
            decimals.as_str(),
        ] {
            assert_eq!(NumberFormat::parse(code), None, "{code}");
        }
    }
}
