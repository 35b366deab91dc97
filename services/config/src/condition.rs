//! Rule conditions: Common Expression Language over the message.
//!
//! Variables: `facts` (numbers by name; a fact the message does not carry
//! counts as 0), `party` (`name`, `kind`: organisation / individual /
//! individual_business), `matter`, `region`, `type`. Functions: CEL's own plus
//! `prior_penalties(duration[, matter])`, the number of administrative
//! penalties of the same party the hub has carried within that window.
//! Durations may be written in days (`duration("730d")`), which plain CEL
//! lacks; they are rewritten to hours before compiling.

use std::sync::OnceLock;

use regex::Regex;

/// A compiled condition and the facts it reads.
pub struct Condition {
    pub program: cel::Program,
    pub source: String,
    pub facts: Vec<String>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition").field("source", &self.source).finish()
    }
}

fn days_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"duration\(\s*"(\d+)d"\s*\)"#).expect("static regex"))
}

fn facts_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\bfacts\.([a-z][a-z0-9_]*)").expect("static regex"))
}

/// Every number in a condition is a double: facts are amounts and
/// measurements, and CEL refuses `double * int`. Integer literals outside
/// string literals get a `.0`.
fn doubles(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let quote = c;
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if chars[i - 1] == quote {
                    break;
                }
            }
            continue;
        }
        let prev = if i == 0 { ' ' } else { chars[i - 1] };
        if c.is_ascii_digit() && !(prev.is_alphanumeric() || prev == '_' || prev == '.') {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.extend(&chars[start..i]);
            let next = chars.get(i).copied().unwrap_or(' ');
            if !(next == '.' || next == 'e' || next == 'E' || next == 'u' || next.is_alphanumeric()) {
                out.push_str(".0");
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Compiles `source`; the error says what is wrong in CEL's words.
pub fn compile(source: &str) -> Result<Condition, String> {
    let rewritten = days_re().replace_all(source, |c: &regex::Captures| {
        let days: u64 = c[1].parse().unwrap_or(0);
        format!("duration(\"{}h\")", days * 24)
    });
    let rewritten = doubles(&rewritten);
    let program = cel::Program::compile(&rewritten).map_err(|e| e.to_string().replace('\n', " "))?;
    let mut facts: Vec<String> = facts_re().captures_iter(source).map(|c| c[1].to_string()).collect();
    facts.sort();
    facts.dedup();
    let known = ["facts", "party", "matter", "region", "type"];
    for v in program.references().variables() {
        if !known.contains(&v) {
            return Err(format!("unknown variable {v:?}; conditions can use {}", known.join(", ")));
        }
    }
    for f in program.references().functions() {
        if f == "prior_penalties" || cel_builtin(f) {
            continue;
        }
        return Err(format!("unknown function {f:?}"));
    }
    Ok(Condition { program, source: source.to_string(), facts })
}

fn cel_builtin(f: &str) -> bool {
    [
        "duration",
        "timestamp",
        "size",
        "has",
        "int",
        "uint",
        "double",
        "string",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "exists",
        "all",
        "exists_one",
        "map",
        "filter",
        "max",
        "min",
        "_&&_",
        "_||_",
    ]
    .contains(&f)
        || f.starts_with('_')
        || f.starts_with('@')
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn days_are_rewritten_and_facts_collected() {
        let c = compile(
            r#"facts.sales_amount * 3 + facts.unsold_value >= 150000 || prior_penalties(duration("730d")) >= 2"#,
        )
        .unwrap();
        assert_eq!(c.facts, vec!["sales_amount", "unsold_value"]);
    }

    #[test]
    fn integer_literals_become_doubles_outside_strings() {
        assert_eq!(
            super::doubles(r#"a * 3 + b >= 150000 && m == "X1" && c > 2.5"#),
            r#"a * 3.0 + b >= 150000.0 && m == "X1" && c > 2.5"#
        );
        assert_eq!(super::doubles(r#"duration("17520h")"#), r#"duration("17520h")"#);
    }

    #[test]
    fn errors_are_reported() {
        assert!(compile("facts.sales_amount >= ").is_err());
        assert!(compile("foo.bar > 1").unwrap_err().contains("unknown variable"));
        assert!(compile("nonsense(1)").unwrap_err().contains("unknown function"));
    }
}
