//! MLflow's input rules shared by its tracking calls: experiment ids, keys of params, tags and
//! metrics, value lengths.

use super::MlflowError;
use super::wire::KeyValue;

/// Longest key, param value and tag value MLflow accepts.
pub const MAX_KEY: usize = 250;
pub const MAX_PARAM_VALUE: usize = 6000;
pub const MAX_TAG_VALUE: usize = 8000;

/// An experiment id as sent (a string holding a whole number).
pub fn parse_experiment_id(id: &str) -> Result<i64, MlflowError> {
    id.trim()
        .parse()
        .map_err(|_| MlflowError::invalid(format!("experiment_id: {id:?} is not an experiment id (a whole number)")))
}

/// Keys of params, tags and metrics: what MLflow accepts (letters, digits, `_ - . / :` and spaces).
pub fn check_key(field: &str, key: &str) -> Result<(), MlflowError> {
    if key.is_empty() || key.chars().count() > MAX_KEY {
        return Err(MlflowError::invalid(format!("{field}: a key of 1 to {MAX_KEY} characters is required")));
    }
    if let Some(bad) = key.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | ' '))) {
        return Err(MlflowError::invalid(format!(
            "{field}: {key:?} may contain only letters, digits, '_', '-', '.', '/', ':' and spaces (found {bad:?})"
        )));
    }
    if key.starts_with('/') || key.split('/').any(|part| part == "..") {
        return Err(MlflowError::invalid(format!("{field}: {key:?} must be a relative path without '..'")));
    }
    Ok(())
}

/// At most `max` characters.
pub fn check_value(field: &str, value: &str, max: usize) -> Result<(), MlflowError> {
    if value.chars().count() > max {
        return Err(MlflowError::invalid(format!("{field}: at most {max} characters (got {})", value.chars().count())));
    }
    Ok(())
}

/// Every tag's key and value.
pub fn check_tags(field: &str, tags: &[KeyValue]) -> Result<(), MlflowError> {
    for (i, tag) in tags.iter().enumerate() {
        check_key(&format!("{field}[{i}].key"), &tag.key)?;
        check_value(&format!("{field}[{i}].value"), &tag.value, MAX_TAG_VALUE)?;
    }
    Ok(())
}
