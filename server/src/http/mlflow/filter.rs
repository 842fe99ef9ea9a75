//! The part of MLflow's search filter language its clients use to look things up by name or run
//! (`name = 'fraud'`, `name LIKE 'fraud%'`, `run_id = '…'`, joined by `AND`), and page tokens.

use serde_json::Value;

use super::MlflowError;

/// One `attribute operator 'value'` comparison.
#[derive(Debug, PartialEq)]
struct Clause {
    attribute: String,
    operator: &'static str,
    value: String,
}

/// A parsed filter: comparisons that must all hold.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<Clause>,
}

impl Filter {
    /// Parses `filter`, accepting only the attributes in `allowed`.
    pub fn parse(filter: Option<&str>, allowed: &[&str]) -> Result<Self, MlflowError> {
        let Some(text) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
            return Ok(Self::default());
        };
        let bad = |why: String| MlflowError::invalid(format!("filter: {why} in {text:?}"));
        let tokens = tokens(text).map_err(bad)?;
        let mut clauses = Vec::new();
        for (i, clause) in tokens.split(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("and"))).enumerate() {
            let [Token::Word(attribute), operator, Token::Quoted(value)] = clause else {
                return Err(bad(format!("comparison {} is not `attribute = 'value'`", i + 1)));
            };
            let attribute = match attribute.split_once('.') {
                Some(("tag" | "tags", key)) if allowed.contains(&"tags") => format!("tags.{key}"),
                _ => attribute.to_ascii_lowercase(),
            };
            let tag = attribute.starts_with("tags.") && allowed.contains(&"tags");
            if !allowed.contains(&attribute.as_str()) && !tag {
                return Err(bad(format!("unsupported attribute '{attribute}' (supported: {})", allowed.join(", "))));
            }
            let operator = match operator {
                Token::Symbol(op) => *op,
                Token::Word(w) if w.eq_ignore_ascii_case("like") => "LIKE",
                Token::Word(w) if w.eq_ignore_ascii_case("ilike") => "ILIKE",
                _ => return Err(bad(format!("comparison {} needs =, !=, LIKE or ILIKE", i + 1))),
            };
            if attribute.starts_with("tags.") && !matches!(operator, "=" | "!=") {
                return Err(bad(format!("comparison {} on a tag needs = or !=", i + 1)));
            }
            clauses.push(Clause { attribute, operator, value: value.clone() });
        }
        Ok(Self { clauses })
    }

    /// A SQL condition (`1 = 1` when empty) and its bind values; `column` names each attribute's
    /// column (`tags` for the JSON list of `key=value` labels a tag comparison looks into).
    pub fn sql(&self, column: impl Fn(&str) -> &'static str) -> (String, Vec<String>) {
        let mut parts = vec!["1 = 1".to_string()];
        let mut binds = Vec::new();
        for clause in &self.clauses {
            if let Some(key) = clause.attribute.strip_prefix("tags.") {
                let label = if clause.value.is_empty() { key.to_string() } else { format!("{key}={}", clause.value) };
                let quoted = serde_json::to_string(&label).unwrap_or_default();
                let escaped: String = quoted
                    .chars()
                    .flat_map(|c| match c {
                        '%' | '_' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                binds.push(format!("%{escaped}%"));
                let not = if clause.operator == "!=" { "NOT " } else { "" };
                parts.push(format!("{} {not}LIKE ${} ESCAPE '\\'", column("tags"), binds.len()));
                continue;
            }
            binds.push(clause.value.clone());
            let n = binds.len();
            let col = column(&clause.attribute);
            parts.push(match clause.operator {
                "ILIKE" => {
                    binds[n - 1] = clause.value.to_lowercase();
                    format!("LOWER({col}) LIKE ${n}")
                }
                op => format!("{col} {op} ${n}"),
            });
        }
        (parts.join(" AND "), binds)
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Symbol(&'static str),
    Quoted(String),
}

/// Words (attributes and keywords, backquotes allowed), `=`/`!=`, and quoted values.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '=' => out.push(Token::Symbol("=")),
            '!' if chars.next_if(|(_, c)| *c == '=').is_some() => out.push(Token::Symbol("!=")),
            '\'' | '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => break,
                        Some((_, ch)) => value.push(ch),
                        None => return Err(format!("unterminated value starting at {i}")),
                    }
                }
                out.push(Token::Quoted(value));
            }
            '`' => {
                let word: String = chars.by_ref().map(|(_, ch)| ch).take_while(|ch| *ch != '`').collect();
                match out.last_mut() {
                    // `tag.`key`` is one attribute.
                    Some(Token::Word(prefix)) if prefix.ends_with('.') => prefix.push_str(&word),
                    _ => out.push(Token::Word(word)),
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut word = c.to_string();
                while let Some((_, ch)) = chars.next_if(|(_, ch)| ch.is_alphanumeric() || *ch == '_' || *ch == '.') {
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
