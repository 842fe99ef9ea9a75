//! MLflow's search filter language as its clients send it: comparisons joined by `AND`
//! (`name = 'fraud'`, `name LIKE 'fraud%'`, `metrics.accuracy > 0.9`, ``params.`max depth` = '4'``,
//! `attributes.run_id IN ('a', 'b')`), and page tokens. [`comparisons`] reads the grammar;
//! [`Filter`] is the name-and-tag subset the registry searches answer.

use serde_json::Value;

use super::MlflowError;

/// The value a comparison holds its attribute against.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    List(Vec<String>),
}

/// One `attribute operator value` comparison; the operator is upper-case (`=`, `!=`, `<`, `<=`,
/// `>`, `>=`, `LIKE`, `ILIKE`, `IN`, `NOT IN`).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub attribute: String,
    pub operator: &'static str,
    pub value: Literal,
}

/// The comparisons of `filter` (none when it is empty); a field-named error for anything else.
pub fn comparisons(filter: Option<&str>) -> Result<Vec<Comparison>, MlflowError> {
    let Some(text) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let bad = |why: String| MlflowError::invalid(format!("filter: {why} in {text:?}"));
    let tokens = tokens(text).map_err(bad)?;
    let mut out = Vec::new();
    for (i, clause) in tokens.split(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("and"))).enumerate() {
        let n = i + 1;
        let (attribute, rest) = match clause {
            [Token::Word(attribute), rest @ ..] => (attribute.clone(), rest),
            _ => return Err(bad(format!("comparison {n} does not start with an attribute"))),
        };
        let keyword = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(k));
        let (operator, rest): (&'static str, &[Token]) = match rest {
            [Token::Symbol(op @ ("=" | "!=" | "<" | "<=" | ">" | ">=")), rest @ ..] => (op, rest),
            [w, rest @ ..] if keyword(w, "like") => ("LIKE", rest),
            [w, rest @ ..] if keyword(w, "ilike") => ("ILIKE", rest),
            [w, rest @ ..] if keyword(w, "in") => ("IN", rest),
            [not, w, rest @ ..] if keyword(not, "not") && keyword(w, "in") => ("NOT IN", rest),
            _ => return Err(bad(format!("comparison {n} needs an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)"))),
        };
        let value = match rest {
            [Token::Quoted(v)] => Literal::Text(v.clone()),
            [Token::Number(v)] => Literal::Number(v.parse().map_err(|_| bad(format!("{v:?} is not a number")))?),
            [Token::Symbol("("), items @ .., Token::Symbol(")")] if operator.ends_with("IN") => {
                let mut values = Vec::new();
                for (j, item) in items.iter().enumerate() {
                    match (j % 2, item) {
                        (0, Token::Quoted(v)) => values.push(v.clone()),
                        (1, Token::Symbol(",")) => {}
                        _ => return Err(bad(format!("comparison {n}: IN takes ('value', 'value', …)"))),
                    }
                }
                Literal::List(values)
            }
            _ => return Err(bad(format!("comparison {n} needs a quoted value, a number or a list"))),
        };
        if operator.ends_with("IN") != matches!(value, Literal::List(_)) {
            return Err(bad(format!("comparison {n}: a list goes with IN, and IN with a list")));
        }
        out.push(Comparison { attribute, operator, value });
    }
    Ok(out)
}

/// A name-and-tag filter: `attribute = 'value'` (or `!=`, `LIKE`, `ILIKE`) comparisons that must
/// all hold, on the attributes a search allows (`tags.<key>` when it allows `tags`).
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<(String, &'static str, String)>,
}

impl Filter {
    /// Parses `filter`, accepting only the attributes in `allowed`.
    pub fn parse(filter: Option<&str>, allowed: &[&str]) -> Result<Self, MlflowError> {
        let text = filter.unwrap_or_default();
        let bad = |why: String| MlflowError::invalid(format!("filter: {why} in {text:?}"));
        let mut clauses = Vec::new();
        for (i, c) in comparisons(filter)?.into_iter().enumerate() {
            let attribute = match c.attribute.split_once('.') {
                Some(("tag" | "tags", key)) if allowed.contains(&"tags") => format!("tags.{key}"),
                _ => c.attribute.to_ascii_lowercase(),
            };
            let tag = attribute.starts_with("tags.") && allowed.contains(&"tags");
            if !allowed.contains(&attribute.as_str()) && !tag {
                return Err(bad(format!("unsupported attribute '{attribute}' (supported: {})", allowed.join(", "))));
            }
            let Literal::Text(value) = c.value else {
                return Err(bad(format!("comparison {} is not `attribute = 'value'`", i + 1)));
            };
            let allowed_ops: &[&str] = if tag { &["=", "!="] } else { &["=", "!=", "LIKE", "ILIKE"] };
            if !allowed_ops.contains(&c.operator) {
                return Err(bad(format!("comparison {} needs {}", i + 1, allowed_ops.join(", "))));
            }
            clauses.push((attribute, c.operator, value));
        }
        Ok(Self { clauses })
    }

    /// A SQL condition (`1 = 1` when empty) and its bind values; `column` names each attribute's
    /// column (`tags` for the JSON list of `key=value` labels a tag comparison looks into).
    pub fn sql(&self, column: impl Fn(&str) -> &'static str) -> (String, Vec<String>) {
        let mut parts = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        for (attribute, operator, value) in &self.clauses {
            if let Some(key) = attribute.strip_prefix("tags.") {
                let label = if value.is_empty() { key.to_string() } else { format!("{key}={value}") };
                let quoted = serde_json::to_string(&label).unwrap_or_default();
                binds.push(format!("%{}%", like_escaped(&quoted)));
                let not = if *operator == "!=" { "NOT " } else { "" };
                parts.push(format!("{} {not}LIKE ${} ESCAPE '\\'", column("tags"), binds.len()));
                continue;
            }
            binds.push(value.clone());
            let n = binds.len();
            let col = column(attribute);
            parts.push(match *operator {
                "ILIKE" => {
                    binds[n - 1] = value.to_lowercase();
                    format!("LOWER({col}) LIKE ${n}")
                }
                op => format!("{col} {op} ${n}"),
            });
        }
        (parts.join(" AND "), binds)
    }
}

/// An `order_by` clause (`<field> [ASC|DESC]`): the field and whether ascending (the default).
pub fn order_key(clause: &str) -> Result<(String, bool), MlflowError> {
    let bad = || MlflowError::invalid(format!("order_by: {clause:?} is not `<field> [ASC|DESC]`"));
    match tokens(clause).map_err(|_| bad())?.as_slice() {
        [Token::Word(field)] => Ok((field.clone(), true)),
        [Token::Word(field), Token::Word(way)] if way.eq_ignore_ascii_case("asc") => Ok((field.clone(), true)),
        [Token::Word(field), Token::Word(way)] if way.eq_ignore_ascii_case("desc") => Ok((field.clone(), false)),
        _ => Err(bad()),
    }
}

/// `text` with LIKE's wildcards and escape character escaped by `\`.
pub fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Symbol(&'static str),
    Quoted(String),
    Number(String),
}

/// Words (attributes and keywords; a key after `metrics.`, `params.`, `tags.` … may be quoted
/// with backquotes or double quotes), comparison symbols, numbers and quoted values.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out: Vec<Token> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let after_prefix = matches!(out.last(), Some(Token::Word(w)) if w.ends_with('.'));
        match c {
            c if c.is_whitespace() => {}
            '=' => out.push(Token::Symbol("=")),
            '!' if chars.next_if(|(_, c)| *c == '=').is_some() => out.push(Token::Symbol("!=")),
            '<' if chars.next_if(|(_, c)| *c == '=').is_some() => out.push(Token::Symbol("<=")),
            '>' if chars.next_if(|(_, c)| *c == '=').is_some() => out.push(Token::Symbol(">=")),
            '<' => out.push(Token::Symbol("<")),
            '>' => out.push(Token::Symbol(">")),
            '(' => out.push(Token::Symbol("(")),
            ')' => out.push(Token::Symbol(")")),
            ',' => out.push(Token::Symbol(",")),
            '\'' | '"' | '`' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => break,
                        Some((_, ch)) => value.push(ch),
                        None => return Err(format!("unterminated quote starting at {i}")),
                    }
                }
                match out.last_mut() {
                    // `metrics.`my key`` and `params."my key"` are one attribute.
                    Some(Token::Word(prefix)) if after_prefix => prefix.push_str(&value),
                    _ if c == '`' => out.push(Token::Word(value)),
                    _ => out.push(Token::Quoted(value)),
                }
            }
            c if c.is_ascii_digit()
                || (matches!(c, '-' | '+' | '.') && chars.peek().is_some_and(|(_, n)| n.is_ascii_digit())) =>
            {
                let mut number = c.to_string();
                while let Some((_, ch)) =
                    chars.next_if(|(_, ch)| ch.is_ascii_digit() || matches!(ch, '.' | 'e' | 'E' | '-' | '+'))
                {
                    number.push(ch);
                }
                out.push(Token::Number(number));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some((_, ch)) = chars.next_if(|(_, ch)| ch.is_alphanumeric() || matches!(ch, '_' | '.' | '-'))
                {
                    word.push(ch);
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("unexpected {other:?} at {i}")),
        }
    }
    Ok(out)
}
/// `max_results` (default and most `max`) and the offset a page token carries.
pub fn page(max_results: Option<i64>, token: Option<&str>, max: i64) -> Result<(i64, i64), MlflowError> {
    let limit = match max_results {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => return Err(MlflowError::invalid(format!("max_results: must be 1 to {max} (got {n})"))),
    };
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            t.parse().map_err(|_| MlflowError::invalid(format!("page_token: {t:?} is not a token this server gave")))?
        }
    };
    Ok((limit, offset))
}

/// Cuts rows read with `limit + 1` to a page, and the token of the next page if there is one.
pub fn next_page<T>(mut rows: Vec<T>, limit: i64, offset: i64) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    (rows, more.then(|| (offset + limit).to_string()))
}

/// Adds `next_page_token` to an answer when there is a next page.
pub fn with_token(mut answer: Value, next: Option<String>) -> Value {
    if let (Some(token), Some(object)) = (next, answer.as_object_mut()) {
        object.insert("next_page_token".into(), Value::String(token));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_comparisons_clients_send() {
        let f = Filter::parse(Some("name='fraud' AND run_id = \"abc\""), &["name", "run_id"]).unwrap();
        let (sql, binds) = f.sql(|attr| if attr == "name" { "m.name" } else { "v.run_id" });
        assert_eq!(sql, "1 = 1 AND m.name = $1 AND v.run_id = $2");
        assert_eq!(binds, vec!["fraud".to_string(), "abc".to_string()]);
        let (sql, binds) = Filter::parse(Some("name ILIKE 'Fr%'"), &["name"]).unwrap().sql(|_| "m.name");
        assert_eq!(sql, "1 = 1 AND LOWER(m.name) LIKE $1");
        assert_eq!(binds, vec!["fr%".to_string()]);
        assert_eq!(Filter::parse(Some("  "), &["name"]).unwrap(), Filter::default());
        let prompts = "name='fraud' AND tag.`mlflow.prompt.is_prompt` != 'true'";
        let (sql, binds) =
            Filter::parse(Some(prompts), &["name", "tags"]).unwrap().sql(|a| if a == "tags" { "tags" } else { "name" });
        assert_eq!(sql, "1 = 1 AND name = $1 AND tags NOT LIKE $2 ESCAPE '\\'");
        assert_eq!(binds, vec!["fraud".to_string(), "%\"mlflow.prompt.is\\_prompt=true\"%".to_string()]);
    }

    #[test]
    fn reads_numbers_lists_and_quoted_keys() {
        let parsed = comparisons(Some(
            "metrics.`val loss` <= -1.5e-3 and params.\"max depth\" = '4' AND run_id NOT IN ('a', 'b')",
        ))
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                Comparison { attribute: "metrics.val loss".into(), operator: "<=", value: Literal::Number(-1.5e-3) },
                Comparison { attribute: "params.max depth".into(), operator: "=", value: Literal::Text("4".into()) },
                Comparison {
                    attribute: "run_id".into(),
                    operator: "NOT IN",
                    value: Literal::List(vec!["a".into(), "b".into()])
                },
            ]
        );
        for bad in ["metrics.a > ", "run_id IN 'a'", "run_id = ('a')", "metrics.a > 1x", "run_id IN ('a' 'b')"] {
            assert!(comparisons(Some(bad)).unwrap_err().message.starts_with("filter: "), "{bad}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        for bad in [
            "tags.x = 'y'",
            "run_id LIKE 'a%'",
            "name = fraud",
            "name > 'a'",
            "name = 'a' OR name = 'b'",
            "name = 'open",
        ] {
            let err = Filter::parse(Some(bad), &["name"]).unwrap_err();
            assert_eq!(err.code, "INVALID_PARAMETER_VALUE", "{bad}");
            assert!(err.message.starts_with("filter: "), "{bad}: {}", err.message);
        }
    }
}
