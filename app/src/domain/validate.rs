//! Input rules, checked on the server for every write and reused by the UI for early feedback.

use crate::error::ApiError;

use super::{
    AgentReport, AgentState, BreakGlassInput, Comparison, DeployInput, GuardrailInput, MAX_METRIC_BATCH, MAX_PAGE_SIZE,
    MAX_SERIES_POINTS, MetricBatch, MetricSource, NewEnvironment, NewModel, NewToken, NewUser, NewVersion, NewWebhook,
    PolicyInput, QuarantineInput, ReviewInput, Role, RollbackInput, RollbackQuery, SeriesQuery, Tolerance, UserPatch,
    VersionPatch, WebhookPatch, Window,
};

const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 4000;
const MAX_SHORT_TEXT: usize = 256;
const MAX_URI: usize = 2048;
const MAX_TAGS: usize = 32;
const MAX_TAG: usize = 64;
const MAX_PARAMETERS: usize = 500;
const MAX_PARAMETER_KEY: usize = 250;
const MAX_PARAMETER_VALUE: usize = 6000;
const MAX_REASON: usize = 1000;

/// An environment, user or team name: a URL-safe slug.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_NAME} characters")));
    }
    if value.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::invalid(field, "must be lower-case"));
    }
    if let Some(bad) = value.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_')) {
        return Err(ApiError::invalid(field, format!("may contain only a-z, 0-9, '-' and '_' (found {bad:?})")));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(field, "must start with a letter or digit"));
    }
    Ok(())
}

/// Longest model name.
const MAX_MODEL_NAME: usize = 256;
/// Characters a model name may not hold: MLflow's `/` and `:`, and those with a meaning of their
/// own in a URL's path or query, so a name is one path segment however a link is decoded.
const NOT_IN_MODEL_NAMES: &[char] = &['/', ':', '?', '#', '%', '&', '=', '+', ';', ',', '@', '$', '\\'];

/// A model name as MLflow allows them (`IrisClf`, `iris clf v2`, `fraud.detector`): 1 to 256
/// printable characters without leading or trailing spaces, none of [`NOT_IN_MODEL_NAMES`], and
/// neither `.` nor `..`. Names are case-sensitive; in URLs they are percent-encoded
/// ([`super::percent_encoded`]).
pub fn model_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_MODEL_NAME {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_MODEL_NAME} characters")));
    }
    if value.trim() != value {
        return Err(ApiError::invalid(field, "must not start or end with spaces"));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control() || NOT_IN_MODEL_NAMES.contains(c)) {
        let listed: String = NOT_IN_MODEL_NAMES.iter().map(|c| format!("{c} ")).collect();
        return Err(ApiError::invalid(
            field,
            format!("may not contain {bad:?} (nor control characters or any of {})", listed.trim_end()),
        ));
    }
    if value == "." || value == ".." {
        return Err(ApiError::invalid(field, "must not be '.' or '..'"));
    }
    Ok(())
}

/// Free text of bounded length without control characters (newlines and tabs allowed).
pub fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A single-line value: bounded, no control characters, no surrounding whitespace.
fn single_line(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    if value.trim() != value {
        return Err(ApiError::invalid(field, "must not start or end with whitespace"));
    }
    Ok(())
}

/// A required reason or comment.
pub fn reason(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    text(field, value, MAX_REASON)
}

pub fn tags(field: &str, values: &[String]) -> Result<(), ApiError> {
    if values.len() > MAX_TAGS {
        return Err(ApiError::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    for (i, tag) in values.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if tag.is_empty() {
            return Err(ApiError::invalid(&f, "must not be empty"));
        }
        single_line(&f, tag, MAX_TAG)?;
        if tag.contains(',') {
            return Err(ApiError::invalid(&f, "must not contain ','"));
        }
    }
    Ok(())
}

/// Splits a comma-separated tag list as typed in a form.
pub fn split_tags(input: &str) -> Vec<String> {
    input.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// Normalises an artifact digest to `sha256:<64 lower-case hex>`.
pub fn digest(field: &str, value: &str) -> Result<String, ApiError> {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    if value.contains(':') && !value.starts_with("sha256:") {
        return Err(ApiError::invalid(field, "only sha256 digests are accepted (sha256:<64 hex digits>)"));
    }
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(field, "must be 64 hex digits, optionally prefixed with 'sha256:'"));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// An artifact location with a scheme, e.g. `s3://bucket/key`, `file:///models/x`, `runs:/id/model`.
pub fn artifact_uri(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    single_line(field, value, MAX_URI)?;
    if value.contains(char::is_whitespace) {
        return Err(ApiError::invalid(field, "must not contain whitespace"));
    }
    let scheme_ok = value.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !scheme_ok {
        return Err(ApiError::invalid(field, "must be a URI with a scheme, e.g. s3://bucket/path"));
    }
    Ok(())
}

fn http_link(field: &str, value: &str) -> Result<(), ApiError> {
    single_line(field, value, MAX_URI)?;
    if !(value.starts_with("https://") || value.starts_with("http://")) || value.contains(char::is_whitespace) {
        return Err(ApiError::invalid(field, "must be an http(s) URL"));
    }
    Ok(())
}

fn git_commit(field: &str, value: &str) -> Result<(), ApiError> {
    if !(7..=64).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(field, "must be 7 to 64 hex digits"));
    }
    Ok(())
}

pub fn page_limit(limit: Option<u32>) -> Result<(), ApiError> {
    match limit {
        Some(l) if l == 0 || l > MAX_PAGE_SIZE => {
            Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")))
        }
        _ => Ok(()),
    }
}

pub fn version_number(field: &str, n: i64) -> Result<(), ApiError> {
    if n < 1 {
        return Err(ApiError::invalid(field, "must be a positive version number"));
    }
    Ok(())
}

impl NewModel {
    pub fn validate(&self) -> Result<(), ApiError> {
        model_name("name", &self.name)?;
        text("description", &self.description, MAX_DESCRIPTION)?;
        single_line("owner_team", &self.owner_team, MAX_NAME)?;
        tags("tags", &self.tags)
    }
}

impl NewEnvironment {
    pub fn validate(&self) -> Result<(), ApiError> {
        name("name", &self.name)?;
        text("description", &self.description, MAX_DESCRIPTION)
    }
}

impl NewVersion {
    /// Checks every field and returns the version with its digest normalised.
    pub fn validated(mut self) -> Result<Self, ApiError> {
        artifact_uri("artifact_uri", &self.artifact_uri)?;
        if let Some(d) = &self.artifact_digest {
            self.artifact_digest = Some(digest("artifact_digest", d)?);
        }
        single_line("framework", &self.framework, MAX_NAME)?;
        if self.parameters.len() > MAX_PARAMETERS {
            return Err(ApiError::invalid("parameters", format!("at most {MAX_PARAMETERS} entries")));
        }
        for (key, value) in &self.parameters {
            if key.is_empty() {
                return Err(ApiError::invalid("parameters", "keys must not be empty"));
            }
            single_line("parameters", key, MAX_PARAMETER_KEY)?;
            text(&format!("parameters.{key}"), value, MAX_PARAMETER_VALUE)?;
        }
        let l = &self.lineage;
        if let Some(v) = &l.run_id {
            single_line("lineage.run_id", v, MAX_SHORT_TEXT)?;
        }
        if let Some(v) = &l.run_link {
            http_link("lineage.run_link", v)?;
        }
        if let Some(v) = &l.git_commit {
            git_commit("lineage.git_commit", v)?;
        }
        if let Some(v) = &l.dataset_ref {
            single_line("lineage.dataset_ref", v, MAX_URI)?;
        }
        if let Some(v) = &l.dataset_hash {
            single_line("lineage.dataset_hash", v, MAX_SHORT_TEXT)?;
        }
        if let Some(p) = l.parent_version {
            version_number("lineage.parent_version", p)?;
        }
        text("description", &self.description, MAX_DESCRIPTION)?;
        tags("tags", &self.tags)?;
        Ok(self)
    }
}

impl VersionPatch {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(d) = &self.description {
            text("description", d, MAX_DESCRIPTION)?;
        }
        if let Some(t) = &self.tags {
            tags("tags", t)?;
        }
        Ok(())
    }
}

impl QuarantineInput {
    pub fn validate(&self) -> Result<(), ApiError> {
        reason("reason", &self.reason)
    }
}

impl DeployInput {
    pub fn validate(&self) -> Result<(), ApiError> {
        version_number("version", self.version)?;
        text("reason", &self.reason, MAX_REASON)
    }
}

const MAX_APPROVALS: u32 = 10;
const MAX_TTL_MINUTES: u32 = 7 * 24 * 60;
const MAX_FREEZE_WINDOWS: usize = 100;
/// A break-glass justification must say something.
pub const MIN_JUSTIFICATION: usize = 20;

impl PolicyInput {
    /// Checks counts and texts; the server checks that each freeze window's times parse and are ordered.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.approvals_required > MAX_APPROVALS {
            return Err(ApiError::invalid("approvals_required", format!("must be between 0 and {MAX_APPROVALS}")));
        }
        if !(1..=MAX_TTL_MINUTES).contains(&self.approval_ttl_minutes) {
            return Err(ApiError::invalid(
                "approval_ttl_minutes",
                format!("must be between 1 and {MAX_TTL_MINUTES} (a week)"),
            ));
        }
        if self.freeze_windows.len() > MAX_FREEZE_WINDOWS {
            return Err(ApiError::invalid("freeze_windows", format!("at most {MAX_FREEZE_WINDOWS} windows")));
        }
        for (i, w) in self.freeze_windows.iter().enumerate() {
            text(&format!("freeze_windows[{i}].reason"), &w.reason, MAX_SHORT_TEXT)?;
        }
        if self.break_glass_roles.iter().any(|r| matches!(r, Role::Viewer | Role::Agent)) {
            return Err(ApiError::invalid("break_glass_roles", "viewers and agents cannot break glass"));
        }
        if !(10..=86_400).contains(&self.convergence_deadline_seconds) {
            return Err(ApiError::invalid("convergence_deadline_seconds", "must be between 10 and 86400 (a day)"));
        }
        Ok(())
    }
}

impl RollbackInput {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(v) = self.to_version {
            version_number("to_version", v)?;
        }
        reason("reason", &self.reason)
    }
}

impl ReviewInput {
    /// A rejection must say why; an approval's comment is optional.
    pub fn validate(&self, required: bool) -> Result<(), ApiError> {
        if required { reason("comment", &self.comment) } else { text("comment", &self.comment, MAX_REASON) }
    }
}

impl BreakGlassInput {
    pub fn validate(&self, model: &str) -> Result<(), ApiError> {
        if let Some(v) = self.to_version {
            version_number("to_version", v)?;
        }
        reason("justification", &self.justification)?;
        if self.justification.trim().chars().count() < MIN_JUSTIFICATION {
            return Err(ApiError::invalid(
                "justification",
                format!("must be at least {MIN_JUSTIFICATION} characters: say why this cannot wait for approval"),
            ));
        }
        if self.confirm != model {
            return Err(ApiError::invalid("confirm", format!("type the model name '{model}' to confirm")));
        }
        Ok(())
    }
}

impl NewWebhook {
    pub fn validate(&self) -> Result<(), ApiError> {
        http_link("url", &self.url)?;
        if let Some(model) = &self.model {
            model_name("model", model)?;
        }
        if let Some(environment) = &self.environment {
            name("environment", environment)?;
        }
        text("description", &self.description, MAX_SHORT_TEXT)
    }
}

impl WebhookPatch {
    pub fn validate(&self) -> Result<(), ApiError> {
        match &self.description {
            Some(d) => text("description", d, MAX_SHORT_TEXT),
            None => Ok(()),
        }
    }
}

impl RollbackQuery {
    pub fn validate(&self) -> Result<(), ApiError> {
        page_limit(self.limit)
    }
}

const MAX_METRIC_KEY: usize = 250;
/// Latest accepted point time: the end of year 9999, in milliseconds.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
const MAX_WINDOW_POINTS: i64 = 100_000;
const MAX_WINDOW_MINUTES: i64 = 7 * 24 * 60;

/// A metric key: letters, digits, `_ - . /` and inner spaces, as MLflow allows; a trailing `.csv`
/// is refused because `…/metrics/{key}.csv` names the raw export of `key`.
pub fn metric_key(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_METRIC_KEY {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_METRIC_KEY} characters")));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ')))
    {
        return Err(ApiError::invalid(
            field,
            format!("may contain only letters, digits, '_', '-', '.', '/' and spaces (found {bad:?})"),
        ));
    }
    if value.trim() != value {
        return Err(ApiError::invalid(field, "must not start or end with a space"));
    }
    if value.ends_with(".csv") {
        return Err(ApiError::invalid(field, "must not end with '.csv'"));
    }
    Ok(())
}

impl MetricBatch {
    /// Checks every point; the error names the first bad one by index, e.g. `points[3].value`.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.points.is_empty() {
            return Err(ApiError::invalid("points", "must hold at least one point"));
        }
        if self.points.len() > MAX_METRIC_BATCH {
            return Err(ApiError::invalid(
                "points",
                format!("at most {MAX_METRIC_BATCH} points per batch (got {})", self.points.len()),
            ));
        }
        for (i, p) in self.points.iter().enumerate() {
            let field = |f: &str| format!("points[{i}].{f}");
            metric_key(&field("key"), &p.key)?;
            if !p.value.is_finite() {
                return Err(ApiError::invalid(&field("value"), format!("must be a finite number (got {})", p.value)));
            }
            if let Some(t) = p.timestamp.filter(|t| !(0..=MAX_TIMESTAMP_MS).contains(t)) {
                return Err(ApiError::invalid(
                    &field("timestamp"),
                    format!("must be milliseconds since 1970 before year 10000 (got {t})"),
                ));
            }
            match (p.source, &p.environment) {
                (MetricSource::Live, None) => {
                    return Err(ApiError::invalid(&field("environment"), "is required for a live point"));
                }
                (MetricSource::Live, Some(env)) => name(&field("environment"), env)?,
                (MetricSource::Eval, Some(_)) => {
                    return Err(ApiError::invalid(
                        &field("environment"),
                        "only live points name an environment (set source to \"live\")",
                    ));
                }
                (MetricSource::Eval, None) => {}
            }
        }
        Ok(())
    }
}

impl SeriesQuery {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(n) = self.max_points.filter(|n| !(2..=MAX_SERIES_POINTS).contains(n)) {
            return Err(ApiError::invalid(
                "max_points",
                format!("must be between 2 and {MAX_SERIES_POINTS} (got {n})"),
            ));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(ApiError::invalid("to", format!("must not be before from ({to} < {from})")));
        }
        if let Some(env) = &self.environment {
            name("environment", env)?;
        }
        Ok(())
    }
}

impl GuardrailInput {
    pub fn validate(&self) -> Result<(), ApiError> {
        name("environment", &self.environment)?;
        metric_key("metric", &self.metric)?;
        match self.window {
            Window::Points(n) if !(1..=MAX_WINDOW_POINTS).contains(&n) => {
                return Err(ApiError::invalid(
                    "window.points",
                    format!("must be between 1 and {MAX_WINDOW_POINTS} (got {n})"),
                ));
            }
            Window::Minutes(m) if !(1..=MAX_WINDOW_MINUTES).contains(&m) => {
                return Err(ApiError::invalid(
                    "window.minutes",
                    format!("must be between 1 and {MAX_WINDOW_MINUTES} (a week; got {m})"),
                ));
            }
            _ => {}
        }
        let Some(comparison) = &self.comparison else {
            return match (self.aggregation, self.comparator, self.threshold) {
                (None, _, _) => {
                    Err(ApiError::invalid("aggregation", "a threshold rule needs one (or give a comparison)"))
                }
                (_, None, _) => {
                    Err(ApiError::invalid("comparator", "a threshold rule needs one (or give a comparison)"))
                }
                (_, _, None) => {
                    Err(ApiError::invalid("threshold", "a threshold rule needs one (or give a comparison)"))
                }
                (_, _, Some(t)) if !t.is_finite() => Err(ApiError::invalid("threshold", "must be a finite number")),
                _ => Ok(()),
            };
        };
        let threshold_field = [
            ("aggregation", self.aggregation.is_some()),
            ("comparator", self.comparator.is_some()),
            ("threshold", self.threshold.is_some()),
        ];
        if let Some((field, _)) = threshold_field.iter().find(|(_, given)| *given) {
            return Err(ApiError::invalid(field, "a comparison rule compares every point; it takes no threshold"));
        }
        if self.source != MetricSource::Live {
            return Err(ApiError::invalid("source", "a comparison rule compares live points with the baseline's"));
        }
        comparison.validate()
    }
}

impl Comparison {
    pub fn validate(&self) -> Result<(), ApiError> {
        let tolerance = match self.tolerance {
            Tolerance::Relative(r) if !(r.is_finite() && (0.0..1.0).contains(&r)) => {
                Err(("comparison.tolerance.relative", "must be at least 0 and below 1 (0.1 is 10 %)"))
            }
            Tolerance::Absolute(a) if !(a.is_finite() && a >= 0.0) => {
                Err(("comparison.tolerance.absolute", "must be a finite number, 0 or more"))
            }
            _ => Ok(()),
        };
        tolerance.map_err(|(field, message)| ApiError::invalid(field, message))?;
        if !(2..=MAX_WINDOW_POINTS as usize).contains(&self.min_points) {
            return Err(ApiError::invalid(
                "comparison.min_points",
                format!("must be between 2 and {MAX_WINDOW_POINTS} (got {})", self.min_points),
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(ApiError::invalid("comparison.confidence", "must be above 0.5 and below 1 (0.95 is 95 %)"));
        }
        Ok(())
    }
}

const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 256;

pub fn password(field: &str, value: &str) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::invalid(field, format!("must be at least {MIN_PASSWORD} characters")));
    }
    if n > MAX_PASSWORD {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_PASSWORD} characters")));
    }
    Ok(())
}

fn roles(field: &str, roles: &[Role]) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::invalid(field, "at least one role is required"));
    }
    Ok(())
}

impl NewUser {
    pub fn validate(&self) -> Result<(), ApiError> {
        name("username", &self.username)?;
        single_line("display_name", &self.display_name, 100)?;
        password("password", &self.password)?;
        roles("roles", &self.roles)
    }
}

impl UserPatch {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(d) = &self.display_name {
            single_line("display_name", d, 100)?;
        }
        if let Some(p) = &self.password {
            password("password", p)?;
        }
        if let Some(r) = &self.roles {
            roles("roles", r)?;
        }
        Ok(())
    }
}

/// An agent's instance name or group: 1 to 128 letters, digits and `. _ : @ -`.
pub fn agent_instance(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 128 {
        return Err(ApiError::invalid(field, "must be 1 to 128 characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "._:@-".contains(*c))) {
        return Err(ApiError::invalid(field, format!("may hold letters, digits and . _ : @ - only, not {bad:?}")));
    }
    Ok(())
}

impl AgentReport {
    pub fn validate(&self) -> Result<(), ApiError> {
        agent_instance("group", &self.group)?;
        if self.counter < 0 {
            return Err(ApiError::invalid("counter", "must not be negative"));
        }
        if self.version.is_some_and(|v| v < 1) {
            return Err(ApiError::invalid("version", "must be a version number (1 or more)"));
        }
        if let Some(d) = &self.digest {
            digest("digest", d)?;
        }
        match (self.state, &self.error) {
            (AgentState::Lost, _) => return Err(ApiError::invalid("state", "lost is the server's to say")),
            (AgentState::Failed, None) => return Err(ApiError::invalid("error", "a failed report says why")),
            (AgentState::Failed, Some(e)) => text("error", e, MAX_DESCRIPTION)?,
            (_, Some(_)) => return Err(ApiError::invalid("error", "only a failed report carries an error")),
            (_, None) => {}
        }
        if self.state == AgentState::Ready && (self.version.is_none() || self.digest.is_none()) {
            return Err(ApiError::invalid("digest", "a ready report names the version and the digest it verified"));
        }
        if !(5..=300).contains(&self.heartbeat_seconds) {
            return Err(ApiError::invalid("heartbeat_seconds", "must be between 5 and 300"));
        }
        Ok(())
    }
}

impl NewToken {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.name.trim().is_empty() {
            return Err(ApiError::invalid("name", "is required"));
        }
        single_line("name", &self.name, MAX_NAME)?;
        if let Some(owner) = &self.owner {
            name("owner", owner)?;
        }
        roles("roles", &self.roles)?;
        let agent = self.roles.contains(&Role::Agent);
        if agent && self.roles.len() > 1 {
            return Err(ApiError::invalid("roles", "an agent token holds the agent role alone"));
        } else if agent && self.environments.is_empty() {
            return Err(ApiError::invalid("environments", "an agent token names the environments it serves"));
        } else if !agent && !self.environments.is_empty() {
            return Err(ApiError::invalid("environments", "only an agent token is limited to environments"));
        }
        for environment in &self.environments {
            name("environments", environment)?;
        }
        if let Some(days) = self.expires_in_days.filter(|d| !(1..=3650).contains(d)) {
            return Err(ApiError::invalid("expires_in_days", format!("must be between 1 and 3650 (got {days})")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_url_safe_slugs() {
        assert!(name("name", "fraud-detector_v2").is_ok());
        for bad in ["", "Fraud", "-lead", "a b", "a/b", "ü", &"x".repeat(65)] {
            let err = name("name", bad).unwrap_err();
            assert_eq!(err.field(), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn model_names_are_what_mlflow_allows_and_one_percent_encoded() {
        for good in ["IrisClf", "iris clf v2", "fraud.detector", "a", "Ünïcode (v2)", &"x".repeat(256)] {
            assert!(model_name("name", good).is_ok(), "{good:?}");
        }
        for bad in ["", "  ", " lead", "trail ", "a/b", "a:b", "a?b", "a#b", "50%", "a\nb", ".", "..", &"x".repeat(257)]
        {
            let err = model_name("name", bad).unwrap_err();
            assert_eq!(err.field(), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn digests_are_normalised_to_prefixed_lower_hex() {
        let hex = "AB".repeat(32);
        assert_eq!(digest("d", &hex).unwrap(), format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(digest("d", &format!("sha256:{hex}")).unwrap(), format!("sha256:{}", "ab".repeat(32)));
        assert!(digest("d", "md5:abc").unwrap_err().message.contains("sha256"));
        assert!(digest("d", "abc").is_err());
        assert!(digest("d", &"g".repeat(64)).is_err());
    }

    #[test]
    fn artifact_uris_need_a_scheme() {
        assert!(artifact_uri("u", "s3://bucket/model.onnx").is_ok());
        assert!(artifact_uri("u", "runs:/abc/model").is_ok());
        for bad in ["", "bucket/model", "s3://a b", "://x", "1s3://x"] {
            assert!(artifact_uri("u", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_version_errors_name_the_nested_field() {
        let v = NewVersion {
            artifact_uri: "s3://b/m".into(),
            lineage: super::super::Lineage { git_commit: Some("xyz".into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(v.validated().unwrap_err().field(), Some("lineage.git_commit"));
    }

    #[test]
    fn tags_are_bounded_and_split_from_forms() {
        assert_eq!(split_tags(" a, b ,,c "), vec!["a", "b", "c"]);
        assert_eq!(tags("tags", &["ok".into(), "".into()]).unwrap_err().field(), Some("tags[1]"));
        assert!(tags("tags", &vec!["t".to_string(); 33]).is_err());
    }

    #[test]
    fn page_limits_are_bounded() {
        assert!(page_limit(None).is_ok());
        assert!(page_limit(Some(200)).is_ok());
        assert_eq!(page_limit(Some(0)).unwrap_err().field(), Some("limit"));
        assert!(page_limit(Some(201)).is_err());
    }

    #[test]
    fn metric_batches_name_the_first_bad_point() {
        use super::super::NewMetricPoint;
        let point = |key: &str, value: f64| NewMetricPoint {
            key: key.into(),
            value,
            step: None,
            timestamp: None,
            source: MetricSource::Eval,
            environment: None,
        };
        let batch = |points| MetricBatch { points };
        assert!(batch(vec![point("val/loss 1", 0.5)]).validate().is_ok());
        assert_eq!(batch(vec![]).validate().unwrap_err().field(), Some("points"));
        assert_eq!(batch(vec![point("a", 1.0); 10_001]).validate().unwrap_err().field(), Some("points"));
        let bad =
            |p: NewMetricPoint| batch(vec![point("ok", 1.0), p]).validate().unwrap_err().field().map(String::from);
        assert_eq!(bad(point("a", f64::NAN)).as_deref(), Some("points[1].value"));
        assert_eq!(bad(point("a", f64::NEG_INFINITY)).as_deref(), Some("points[1].value"));
        for key in ["", "a\u{7f}", "ü", " a", "x.csv", &"k".repeat(251)] {
            assert_eq!(bad(point(key, 1.0)).as_deref(), Some("points[1].key"), "{key:?}");
        }
        assert_eq!(
            bad(NewMetricPoint { timestamp: Some(-1), ..point("a", 1.0) }).as_deref(),
            Some("points[1].timestamp")
        );
        let live = NewMetricPoint { source: MetricSource::Live, ..point("a", 1.0) };
        assert_eq!(bad(live.clone()).as_deref(), Some("points[1].environment"));
        assert_eq!(
            bad(NewMetricPoint { environment: Some("Prod".into()), ..live }).as_deref(),
            Some("points[1].environment")
        );
        let eval_in_env = NewMetricPoint { environment: Some("production".into()), ..point("a", 1.0) };
        assert_eq!(bad(eval_in_env).as_deref(), Some("points[1].environment"));
    }

    #[test]
    fn quarantine_needs_a_reason() {
        assert!(QuarantineInput { reason: "  ".into() }.validate().is_err());
        assert!(QuarantineInput { reason: "bias found".into() }.validate().is_ok());
    }
}
