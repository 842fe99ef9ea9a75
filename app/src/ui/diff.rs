//! A field-by-field comparison of two JSON states, for the audit entry's before/after view.

use std::collections::BTreeMap;

use serde_json::Value;

/// How a field differs between before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
    Same,
}

impl Change {
    pub fn class(self) -> &'static str {
        match self {
            Change::Added => "diff-added",
            Change::Removed => "diff-removed",
            Change::Changed => "diff-changed",
            Change::Same => "diff-same",
        }
    }
}

/// One field: its dotted path and its value before and after (as displayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub change: Change,
}

/// Nested objects become dotted paths; arrays and scalars are leaves.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Every field of either state, changed ones first in path order, then the unchanged ones.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<DiffRow> {
    let (mut b, mut a) = (BTreeMap::new(), BTreeMap::new());
    if let Some(v) = before {
        flatten("", v, &mut b);
    }
    if let Some(v) = after {
        flatten("", v, &mut a);
    }
    let mut paths: Vec<&String> = b.keys().chain(a.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut rows: Vec<DiffRow> = paths
        .into_iter()
        .map(|p| {
            let (before, after) = (b.get(p).cloned(), a.get(p).cloned());
            let change = match (&before, &after) {
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (x, y) if x == y => Change::Same,
                _ => Change::Changed,
            };
            DiffRow { path: p.clone(), before, after, change }
        })
        .collect();
    rows.sort_by_key(|r| r.change == Change::Same);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_are_compared_by_path_with_changes_first() {
        let before = json!({ "description": "", "tags": ["a"], "lineage": { "run_id": "r1" }, "number": 2 });
        let after = json!({ "description": "first", "tags": ["a"], "lineage": { "run_id": "r1", "git_commit": "abc" }, "number": 2 });
        let rows = diff(Some(&before), Some(&after));
        let changed: Vec<(&str, Change)> = rows.iter().map(|r| (r.path.as_str(), r.change)).collect();
        assert_eq!(
            changed,
            vec![
                ("description", Change::Changed),
                ("lineage.git_commit", Change::Added),
                ("lineage.run_id", Change::Same),
                ("number", Change::Same),
                ("tags", Change::Same),
            ]
        );
        assert_eq!(rows[0].after.as_deref(), Some("first"));
        assert!(diff(None, Some(&json!({ "a": 1 })))[0].change == Change::Added);
    }
}
