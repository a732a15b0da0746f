//! `calculate`: exact arithmetic for agents (models are unreliable at it). Behind the
//! `tool-calculator` feature. Numbers, `+ - * / %`, `^`, parentheses and unary minus;
//! evaluated as f64 with a depth limit, so a hostile expression cannot overflow the stack.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolOutput};

/// The calculator tool.
pub struct Calculate;

/// `calculate` arguments.
#[derive(Debug, Deserialize)]
pub struct CalculateArgs {
    expression: String,
}

#[async_trait]
impl Tool for Calculate {
    const NAME: &'static str = "calculate";
    type Args = CalculateArgs;

    fn description(&self) -> &'static str {
        "Evaluate an arithmetic expression exactly: numbers, + - * / % ^ and parentheses."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "expression": { "type": "string", "description": "e.g. (1200 * 0.21) + 35" } },
            "required": ["expression"]
        })
    }

    async fn call(&self, _ctx: &ToolContext, args: CalculateArgs) -> Result<ToolOutput, ToolError> {
        let value = evaluate(&args.expression).map_err(ToolError)?;
        Ok(ToolOutput::text(format!("{} = {}", args.expression.trim(), format_number(value))))
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

/// Evaluates `expr`.
pub fn evaluate(expr: &str) -> Result<f64, String> {
    if expr.len() > 1000 {
        return Err("the expression is too long (1000 characters at most)".into());
    }
    let mut p = Parser { s: expr.as_bytes(), i: 0, depth: 0 };
    let v = p.sum()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected `{}` at position {}", char::from(p.s[p.i]), p.i + 1));
    }
    if !v.is_finite() {
        return Err("the result is not a finite number (division by zero?)".into());
    }
    Ok(v)
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.power()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.i += 1;
            let r = self.power()?;
            v = match op {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.peek() == Some(b'^') {
            self.i += 1;
            let exp = self.power()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("the expression nests too deeply".into());
        }
        let v = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                -self.unary()?
            }
            Some(b'+') => {
                self.i += 1;
                self.unary()?
            }
            Some(b'(') => {
                self.i += 1;
                let v = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err("a `(` is not closed".into());
                }
                self.i += 1;
                v
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number()?,
            Some(c) => return Err(format!("unexpected `{}` at position {}", char::from(c), self.i + 1)),
            None => return Err("the expression ends too early".into()),
        };
        self.depth -= 1;
        Ok(v)
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || matches!(self.s[self.i], b'.' | b'_')) {
            self.i += 1;
        }
        let text: String = String::from_utf8_lossy(&self.s[start..self.i]).replace('_', "");
        text.parse().map_err(|_| format!("`{text}` is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn arithmetic_follows_precedence() {
        assert_eq!(evaluate("1 + 2 * 3").unwrap(), 7.0);
        assert_eq!(evaluate("(1 + 2) * 3").unwrap(), 9.0);
        assert_eq!(evaluate("2 ^ 3 ^ 2").unwrap(), 512.0);
        assert_eq!(evaluate("-4 + 10 % 4").unwrap(), -2.0);
        assert_eq!(evaluate("1_200 * 0.5").unwrap(), 600.0);
    }

    #[test]
    fn bad_expressions_are_errors() {
        assert!(evaluate("1 / 0").is_err());
        assert!(evaluate("2 +").is_err());
        assert!(evaluate("(1").is_err());
        assert!(evaluate("rm -rf").is_err());
        assert!(evaluate(&"(".repeat(500)).is_err());
    }
}
