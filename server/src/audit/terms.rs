//! The words free-text search finds an audit entry by, stored with the entry when it is appended.

use std::collections::BTreeSet;

use app::domain::AuditEntry;
use serde_json::Value;

/// At most this many distinct words of an entry are indexed for free-text search.
const MAX_TERMS: usize = 200;

/// The words of a text as search terms: lowercase runs of letters and digits, 2 to 64 bytes long.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && w.len() <= 64)
        .map(str::to_lowercase)
}

fn strings_in<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// The words free-text search finds an entry by: in its target, actor, action, reason and the
/// text values of its before and after states.
pub(crate) fn entry_terms(e: &AuditEntry) -> BTreeSet<String> {
    let mut texts = vec![e.target.as_str(), e.actor.as_str(), e.action.as_str()];
    texts.extend(e.reason.as_deref());
    for state in [&e.before, &e.after].into_iter().flatten() {
        strings_in(state, &mut texts);
    }
    let mut terms = BTreeSet::new();
    for word in texts.into_iter().flat_map(words) {
        if terms.len() == MAX_TERMS {
            break;
        }
        terms.insert(word);
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_the_words_of_their_target_reason_and_states() {
        let entry = AuditEntry {
            seq: 1,
            at: String::new(),
            actor: "alice (token ci)".into(),
            actor_user: Some("alice".into()),
            actor_token: Some("ci".into()),
            action: "version.quarantine".into(),
            target: "models/fraud-detector/versions/3".into(),
            model: Some("fraud-detector".into()),
            version: Some(3),
            environment: None,
            before: Some(serde_json::json!({ "tags": ["Gradient-Boosted"], "n": 5 })),
            after: None,
            reason: Some("Label leakage, see OPS-1234".into()),
            request_id: None,
            client_addr: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let terms = entry_terms(&entry);
        for word in ["fraud", "detector", "quarantine", "leakage", "ops", "1234", "gradient", "boosted", "alice", "ci"]
        {
            assert!(terms.contains(word), "{word}: {terms:?}");
        }
        assert!(!terms.contains("3") && !terms.contains("5"), "one-character words are not indexed");
    }
}
