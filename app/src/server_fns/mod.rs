//! Server functions: the console's calls into the backend, thin adapters over [`crate::backend`].
//! Each takes the caller from the request (set by the server's authentication middleware);
//! the backend checks the caller's roles.

mod fleet;
mod rollbacks;

use leptos::prelude::*;

use crate::domain::*;
use crate::error::ApiError;
pub use fleet::*;
pub use rollbacks::*;

/// Everything the model page shows, in one round trip, with what the caller may do there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelPageData {
    pub model: Model,
    pub versions: Page<Version>,
    pub history: Page<DeploymentEvent>,
    pub may_deploy: bool,
    /// The model's latest audit entries, for callers who may read the audit log.
    pub audit_trail: Option<Vec<AuditEntry>>,
    /// One metric key across the versions.
    pub metrics: ModelMetrics,
    pub guardrails: Vec<Guardrail>,
    pub may_manage_guardrails: bool,
    /// Whether the caller may put an observed guardrail in force.
    pub may_enforce_guardrails: bool,
    /// Whether the caller may open the rollback dialog (to request, or to break glass).
    pub may_roll_back: bool,
    /// Rollbacks of this model awaiting a reviewer: open requests, unacknowledged break glass.
    pub rollbacks: Vec<RollbackRequest>,
    /// Each environment whose live version is failing: the rules it breaks and the proposed target.
    pub failing: Vec<Failing>,
}

/// An environment whose live version fails its guardrails.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Failing {
    pub health: EnvironmentHealth,
    /// The rules broken there, each with the value observed.
    pub broken: Vec<GuardrailCheck>,
    /// The version a rollback would go back to, if there is a healthy one.
    pub proposal: Option<i64>,
}

/// An audit entry with where the chain ends (the pager stops there) and whether the caller may
/// open the users page an entry about a user links to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntryPageData {
    pub entry: AuditEntry,
    pub head_seq: i64,
    pub may_manage_users: bool,
}

/// The version page's data with what the caller may do there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionPageData {
    pub version: Version,
    /// The files the registry holds for the version (none when they are kept elsewhere).
    pub files: Vec<VersionFile>,
    pub may_edit: bool,
    pub may_quarantine: bool,
    /// The version's latest audit entries, for callers who may read the audit log.
    pub audit_trail: Option<Vec<AuditEntry>>,
}

/// A point as a chart draws it: its position on the chart's axis (step, time in ms, or version
/// number) and its value; serialized as a pair to keep pages small.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChartPoint(pub i64, pub f64);

impl ChartPoint {
    pub fn x(self) -> i64 {
        self.0
    }

    pub fn value(self) -> f64 {
        self.1
    }
}

/// One line of a chart: a series of this version, or of the version it is compared with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChartLine {
    /// e.g. `v3 eval`, `v3 live · production`, `v2 eval`.
    pub label: String,
    /// Whether the line belongs to the compared version.
    pub compared: bool,
    pub total: i64,
    pub downsampled: bool,
    pub points: Vec<ChartPoint>,
}

/// A guardrail's threshold as drawn on a chart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Threshold {
    /// e.g. `production: p99(latency_ms, last 100) <= 250`.
    pub label: String,
    pub value: f64,
    pub severity: Severity,
}

impl Threshold {
    /// The thresholds of the guardrails on `metric`, each labelled with its environment and rule.
    pub fn of_metric(guardrails: &[Guardrail], metric: &str) -> Vec<Threshold> {
        guardrails
            .iter()
            .filter(|g| g.metric == metric)
            .filter_map(|g| {
                Some(Threshold {
                    label: format!("{}: {}", g.environment, g.describe()),
                    value: g.threshold?,
                    severity: g.severity,
                })
            })
            .collect()
    }
}

/// One metric key's chart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChartData {
    pub key: String,
    pub axis: MetricAxis,
    pub lines: Vec<ChartLine>,
    pub thresholds: Vec<Threshold>,
}

/// The version page's metrics: a chart per key, the health behind each environment's verdict,
/// and the deploy and rollback events of the version (marked on the time axis).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionMetricsData {
    pub axis: MetricAxis,
    pub charts: Vec<ChartData>,
    pub reports: Vec<HealthReport>,
    pub events: Vec<DeploymentEvent>,
    /// The other versions of the model, newest first, for *compare with*.
    pub others: Vec<i64>,
    pub compare: Option<i64>,
    /// A guardrail run over this version's history, when the page asks (`?replay=<id>`).
    pub replay: Option<Replay>,
}

/// The audit screen: one page of entries and the integrity panel.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditScreenData {
    pub page: AuditPage,
    pub status: IntegrityStatus,
    /// Whether entries about users may link to the users page (admins only).
    pub may_manage_users: bool,
    /// The caller's newest export job.
    pub export: Option<Job>,
}

/// The API tokens page's data: the tokens, and the roles a new token may hold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokensPageData {
    pub tokens: Vec<ApiToken>,
    pub my_roles: Vec<Role>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use axum::http::request::Parts;
    use leptos::prelude::*;

    use super::{ChartData, ChartLine, ChartPoint, Threshold};
    use crate::backend::BackendHandle;
    use crate::domain::*;
    use crate::error::ApiError;
    use crate::session_cookie::CookiePolicy;

    pub fn backend() -> Result<BackendHandle, ApiError> {
        use_context::<BackendHandle>().ok_or_else(ApiError::internal)
    }

    pub fn parts() -> Result<Parts, ApiError> {
        use_context::<Parts>().ok_or_else(ApiError::internal)
    }

    pub fn cookie_policy() -> CookiePolicy {
        use_context::<CookiePolicy>().unwrap_or(CookiePolicy { secure: false })
    }

    /// The latest audit entries about a model (or one version), if the caller may read the log.
    pub async fn audit_trail(
        backend: &BackendHandle,
        caller: &Caller,
        model: &str,
        version: Option<i64>,
    ) -> Result<Option<Vec<crate::domain::AuditEntry>>, ApiError> {
        if !caller.can(crate::domain::Permission::Audit) {
            return Ok(None);
        }
        // The changes people and rollbacks made; rules' verdicts stay in the full log.
        let query = crate::domain::AuditQuery {
            model: Some(model.to_string()),
            version,
            verdicts: Some(false),
            limit: Some(8),
            ..Default::default()
        };
        Ok(Some(backend.search_audit(caller, query).await?.entries))
    }

    /// The authenticated caller of this request, or 401.
    pub fn caller() -> Result<Caller, ApiError> {
        parts()?.extensions.get::<Caller>().cloned().ok_or_else(ApiError::unauthorized)
    }

    /// Points per chart line: the minimum and maximum of 250 buckets, about one bucket per two
    /// pixels of a chart's width.
    const CHART_POINTS: u32 = 500;

    /// One key's chart for a version, with the compared version's series overlaid and the
    /// thresholds of the model's guardrails on that key.
    pub async fn chart(
        backend: &BackendHandle,
        caller: &Caller,
        (model, number, compare): (&str, i64, Option<i64>),
        key: &str,
        axis: MetricAxis,
        range: (Option<i64>, Option<i64>),
        guardrails: &[Guardrail],
    ) -> Result<ChartData, ApiError> {
        let query = SeriesQuery {
            max_points: Some(CHART_POINTS),
            from: range.0,
            to: range.1,
            axis: Some(axis),
            ..Default::default()
        };
        let mut lines = Vec::new();
        for (version, compared) in std::iter::once((number, false)).chain(compare.map(|c| (c, true))) {
            let series = match backend.metric_series(caller, model, version, key, query.clone()).await {
                Ok(s) => s.series,
                Err(e) if compared && e.code == crate::error::ErrorCode::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            lines.extend(series.into_iter().map(|s| {
                ChartLine {
                    label: match &s.environment {
                        Some(env) => format!("v{version} {} · {env}", s.source.as_str()),
                        None => format!("v{version} {}", s.source.as_str()),
                    },
                    compared,
                    total: s.total,
                    downsampled: s.downsampled,
                    points: s
                        .points
                        .iter()
                        .map(|p| ChartPoint(if axis == MetricAxis::Time { p.timestamp } else { p.step }, p.value))
                        .collect(),
                }
            }));
        }
        let thresholds = Threshold::of_metric(guardrails, key);
        Ok(ChartData { key: key.to_string(), axis, lines, thresholds })
    }

    /// Adds a `Set-Cookie` header to the response.
    pub fn set_cookie(value: &str) -> Result<(), ApiError> {
        let response = use_context::<leptos_axum::ResponseOptions>().ok_or_else(ApiError::internal)?;
        let value = axum::http::HeaderValue::from_str(value).map_err(|_| ApiError::internal())?;
        response.append_header(axum::http::header::SET_COOKIE, value);
        Ok(())
    }
}

#[cfg(feature = "ssr")]
use ssr::*;

/// Who is signed in; `None` for an anonymous visitor.
#[server]
pub async fn current_user() -> Result<Option<Me>, ApiError> {
    let Some(caller) = parts()?.extensions.get::<Caller>().cloned() else {
        return Ok(None);
    };
    Ok(Some(backend()?.me(&caller).await?))
}

/// Signs in and returns to `next` (a local path); the session lives in an HttpOnly cookie.
#[server]
pub async fn sign_in(username: String, password: String, next: Option<String>) -> Result<(), ApiError> {
    // Where to go is settled before anything is stored, so nothing can fail after the sign-in.
    let next = safe_next(next.as_deref());
    let origin = parts()?.extensions.get::<Origin>().cloned().unwrap_or_default();
    let grant = backend()?.sign_in(&username, &password, &origin).await?;
    set_cookie(&cookie_policy().set(&grant.token))?;
    leptos_axum::redirect(&next);
    Ok(())
}

/// Ends the session and returns to the sign-in page.
#[server]
pub async fn sign_out() -> Result<(), ApiError> {
    let policy = cookie_policy();
    let parts = parts()?;
    if let Some(token) = policy.read(&parts.headers) {
        let origin = parts.extensions.get::<Origin>().cloned().unwrap_or_default();
        backend()?.sign_out(&token, &origin).await?;
    }
    set_cookie(&policy.clear())?;
    leptos_axum::redirect("/sign-in");
    Ok(())
}

/// Only paths of this site are followed after sign-in (no open redirect): one leading `/` not
/// followed by another or a backslash, and nothing but visible ASCII — browsers drop tabs and
/// line breaks from a URL (`/<TAB>/evil.example` is `//evil.example` to them), and a control
/// character cannot go in a `Location` header at all.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n[1..].starts_with(['/', '\\'])
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[server]
pub async fn list_models(query: ModelQuery) -> Result<Page<Model>, ApiError> {
    backend()?.list_models(&caller()?, query).await
}

/// The model page; `metric` picks the key compared across versions.
#[server]
pub async fn model_overview(name: String, metric: Option<String>) -> Result<ModelPageData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let model = backend.get_model(&caller, &name).await?;
    let query = VersionQuery { limit: Some(MAX_PAGE_SIZE), ..Default::default() };
    let versions = backend.list_versions(&caller, &name, query).await?;
    let history = backend.history(&caller, &name, None, HistoryQuery::default()).await?;
    let audit_trail = audit_trail(&backend, &caller, &name, None).await?;
    let mut failing = Vec::new();
    for health in model.health.iter().filter(|h| h.health == Health::Failing) {
        let plan = backend.rollback_plan(&caller, &name, &health.environment, None).await?;
        let reports = backend.version_health(&caller, &name, health.version).await?;
        let broken = reports
            .into_iter()
            .filter(|r| r.environment == health.environment)
            .flat_map(|r| r.checks)
            .filter(GuardrailCheck::breaks)
            .collect();
        failing.push(Failing { health: health.clone(), broken, proposal: plan.proposed });
    }
    let awaiting = RollbackQuery { model: Some(name.clone()), awaiting_review: Some(true), ..Default::default() };
    let policies = backend.list_policies(&caller).await?;
    let may_break_glass = policies.iter().any(|p| p.lets_break_glass(&caller.roles));
    Ok(ModelPageData {
        model,
        versions,
        history,
        may_deploy: caller.can(Permission::Deploy),
        audit_trail,
        metrics: backend.model_metrics(&caller, &name, metric.filter(|m| !m.is_empty())).await?,
        guardrails: backend.list_guardrails(&caller, &name).await?,
        may_manage_guardrails: caller.can(Permission::ManageGuardrails),
        may_enforce_guardrails: caller.can(Permission::EnforceGuardrails),
        may_roll_back: caller.can(Permission::RequestRollbacks) || may_break_glass,
        rollbacks: backend.list_rollbacks(&caller, awaiting).await?.items,
        failing,
    })
}

/// Creates a guardrail (no `id`) or replaces one, from the model page's form: a threshold rule
/// (`kind` = `threshold`) or a comparison with the baseline (`comparison`); the other kind's
/// fields are ignored.
#[server]
#[allow(clippy::too_many_arguments)]
pub async fn save_guardrail(
    model: String,
    id: Option<i64>,
    kind: String,
    environment: String,
    metric: String,
    source: MetricSource,
    window: String,
    window_size: String,
    aggregation: Aggregation,
    comparator: Comparator,
    threshold: String,
    direction: Direction,
    tolerance: String,
    tolerance_kind: String,
    test: ComparisonTest,
    min_points: String,
    confidence: String,
    severity: Severity,
) -> Result<Guardrail, ApiError> {
    let number = |field: &str, raw: &str| -> Result<f64, ApiError> {
        raw.trim().parse::<f64>().map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a number")))
    };
    let size = number("window_size", &window_size)? as i64;
    let window = if window == "minutes" { Window::Minutes(size) } else { Window::Points(size) };
    let mut input = GuardrailInput {
        environment,
        metric: metric.trim().to_string(),
        source,
        aggregation: None,
        window,
        comparator: None,
        threshold: None,
        comparison: None,
        severity,
        enforced: None,
    };
    if kind == "comparison" {
        // The form asks for percentages: 10 (%) is a relative tolerance of 0.1, 95 (%) a confidence of 0.95.
        let amount = number("comparison.tolerance", &tolerance)?;
        input.comparison = Some(Comparison {
            direction,
            tolerance: if tolerance_kind == "absolute" {
                Tolerance::Absolute(amount)
            } else {
                Tolerance::Relative(amount / 100.0)
            },
            test,
            min_points: number("comparison.min_points", &min_points)?.max(0.0) as usize,
            confidence: number("comparison.confidence", &confidence)? / 100.0,
        });
        input.source = MetricSource::Live;
    } else {
        (input.aggregation, input.comparator) = (Some(aggregation), Some(comparator));
        input.threshold = Some(number("threshold", &threshold)?);
    }
    let (backend, caller) = (backend()?, caller()?);
    match id {
        Some(id) => backend.update_guardrail(&caller, &model, id, input).await,
        None => backend.create_guardrail(&caller, &model, input).await,
    }
}

/// Enforces an observed guardrail (admins), from the model page.
#[server]
pub async fn enforce_guardrail(model: String, id: i64) -> Result<Guardrail, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let rule = backend.list_guardrails(&caller, &model).await?.into_iter().find(|g| g.id == id);
    let rule = rule.ok_or_else(|| ApiError::not_found(format!("model '{model}' has no guardrail {id}")))?;
    backend.update_guardrail(&caller, &model, id, GuardrailInput { enforced: Some(true), ..rule.input() }).await
}

#[server]
pub async fn remove_guardrail(model: String, id: i64) -> Result<Guardrail, ApiError> {
    backend()?.delete_guardrail(&caller()?, &model, id).await
}

#[server]
pub async fn version_page(model: String, number: i64) -> Result<VersionPageData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let version = backend.get_version(&caller, &model, number).await?;
    let files = backend.version_files(&caller, &model, number).await?.files;
    Ok(VersionPageData {
        files,
        audit_trail: audit_trail(&backend, &caller, &model, Some(number)).await?,
        version,
        may_edit: caller.can(Permission::EditVersions),
        may_quarantine: caller.can(Permission::Quarantine),
    })
}

/// The version page's charts (compared with another version when asked), health and events.
/// Without an axis, charts run against time when the version has live points, else against step.
#[server]
pub async fn version_metrics(
    model: String,
    number: i64,
    compare: Option<i64>,
    axis: Option<MetricAxis>,
    replay: Option<i64>,
) -> Result<VersionMetricsData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let summaries = backend.list_metrics(&caller, &model, number).await?;
    let axis = axis.unwrap_or(if summaries.iter().any(|s| s.source == MetricSource::Live) {
        MetricAxis::Time
    } else {
        MetricAxis::Step
    });
    let guardrails = backend.list_guardrails(&caller, &model).await?;
    let compare = compare.filter(|c| *c != number);
    let mut keys: Vec<&str> = summaries.iter().map(|s| s.key.as_str()).collect();
    keys.dedup();
    let mut charts = Vec::with_capacity(keys.len());
    for key in keys {
        // Evaluation points are stamped when they were pushed, often all at once: a key with only
        // those stays on steps even when the page shows time.
        let live = summaries.iter().any(|s| s.key == key && s.source == MetricSource::Live);
        let key_axis = if live { axis } else { MetricAxis::Step };
        charts
            .push(chart(&backend, &caller, (&model, number, compare), key, key_axis, (None, None), &guardrails).await?);
    }
    let history =
        backend.history(&caller, &model, None, HistoryQuery { limit: Some(MAX_PAGE_SIZE), offset: None }).await?;
    let events =
        history.items.into_iter().filter(|e| e.to_version == number || e.from_version == Some(number)).collect();
    // Version numbers are never reused or removed: the model's are 1..=latest.
    let latest = backend.get_model(&caller, &model).await?.latest_version.unwrap_or(0);
    let others = (1..=latest).rev().filter(|n| *n != number).collect();
    Ok(VersionMetricsData {
        axis,
        charts,
        reports: backend.version_health(&caller, &model, number).await?,
        events,
        others,
        compare,
        replay: match replay {
            Some(id) => Some(backend.replay_guardrail(&caller, &model, number, id).await?),
            None => None,
        },
    })
}

/// One chart again, over a zoomed range (or the whole series) at full resolution.
#[server]
pub async fn reload_chart(
    model: String,
    number: i64,
    key: String,
    compare: Option<i64>,
    axis: MetricAxis,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<ChartData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let guardrails = backend.list_guardrails(&caller, &model).await?;
    chart(&backend, &caller, (&model, number, compare), &key, axis, (from, to), &guardrails).await
}

/// The audit screen's entries (filtered, paged by cursor) and its integrity panel.
#[server]
pub async fn audit_screen(query: AuditQuery) -> Result<AuditScreenData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let page = backend.search_audit(&caller, query).await?;
    Ok(AuditScreenData {
        page,
        status: backend.audit_status(&caller).await?,
        may_manage_users: caller.can(Permission::ManageUsers),
        export: backend.latest_audit_export(&caller).await?,
    })
}

#[server]
pub async fn audit_entry_page(seq: i64) -> Result<AuditEntryPageData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let entry = backend.audit_entry(&caller, seq).await?;
    Ok(AuditEntryPageData {
        entry,
        head_seq: backend.audit_status(&caller).await?.head_seq,
        may_manage_users: caller.can(Permission::ManageUsers),
    })
}

/// Starts rechecking the whole chain in the background (it signs a checkpoint at its head when
/// intact), or answers the check already running.
#[server]
pub async fn verify_audit_now() -> Result<Job, ApiError> {
    backend()?.verify_audit(&caller()?).await
}

/// The caller's newest audit export job: polled while it is written.
#[server]
pub async fn latest_export() -> Result<Option<Job>, ApiError> {
    backend()?.latest_audit_export(&caller()?).await
}

/// The integrity panel alone: polled while a verification runs.
#[server]
pub async fn integrity_panel() -> Result<IntegrityStatus, ApiError> {
    backend()?.audit_status(&caller()?).await
}

#[server]
pub async fn deploy_version(
    model: String,
    environment: String,
    version: i64,
    reason: String,
) -> Result<DeploymentEvent, ApiError> {
    let input = DeployInput { version, reason, expected_revision: None };
    backend()?.deploy(&caller()?, &model, &environment, input).await
}

/// Saves the editable fields; `tags` is comma-separated as typed in the form.
#[server]
pub async fn edit_version(model: String, number: i64, description: String, tags: String) -> Result<Version, ApiError> {
    let patch =
        VersionPatch { description: Some(description), tags: Some(validate::split_tags(&tags)), artifact_digest: None };
    backend()?.update_version(&caller()?, &model, number, patch).await
}

#[server]
pub async fn quarantine_version(model: String, number: i64, reason: String) -> Result<Version, ApiError> {
    backend()?.quarantine_version(&caller()?, &model, number, QuarantineInput { reason }).await
}

#[server]
pub async fn release_version(model: String, number: i64) -> Result<Version, ApiError> {
    backend()?.release_version(&caller()?, &model, number).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(super::safe_next(Some("/models/x")), "/models/x");
        assert_eq!(super::safe_next(Some("/audit?model=a%20b&q=x")), "/audit?model=a%20b&q=x");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "models",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r//evil.example",
            "/\x0b",
            "/\x01",
            "/ /evil",
            "/\u{7f}",
            "/mod\u{e8}le",
            "\t//evil.example",
            "javascript:alert(1)",
        ] {
            assert_eq!(super::safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(super::safe_next(None), "/");
    }
}

/// Role checkboxes as a form sends them: `roles[operator]=on` for each ticked role.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoleChoice {
    #[serde(default)]
    pub viewer: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub reviewer: Option<String>,
    #[serde(default)]
    pub compliance: Option<String>,
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
}

impl RoleChoice {
    pub fn roles(&self) -> Vec<Role> {
        [
            (Role::Viewer, &self.viewer),
            (Role::Operator, &self.operator),
            (Role::Reviewer, &self.reviewer),
            (Role::Compliance, &self.compliance),
            (Role::Admin, &self.admin),
            (Role::Agent, &self.agent),
        ]
        .into_iter()
        .filter(|(_, ticked)| ticked.is_some())
        .map(|(role, _)| role)
        .collect()
    }
}

#[server]
pub async fn list_users() -> Result<Vec<User>, ApiError> {
    backend()?.list_users(&caller()?).await
}

#[server]
pub async fn create_user(
    username: String,
    display_name: String,
    password: String,
    roles: Option<RoleChoice>,
) -> Result<User, ApiError> {
    let roles = roles.unwrap_or_default().roles();
    backend()?.create_user(&caller()?, NewUser { username, display_name, password, roles }).await
}

/// Enables or disables a user.
#[server]
pub async fn set_user_disabled(username: String, disabled: bool) -> Result<User, ApiError> {
    backend()?.update_user(&caller()?, &username, UserPatch { disabled: Some(disabled), ..Default::default() }).await
}

#[server]
pub async fn reset_password(username: String, password: String) -> Result<User, ApiError> {
    backend()?.update_user(&caller()?, &username, UserPatch { password: Some(password), ..Default::default() }).await
}

#[server]
pub async fn tokens_page() -> Result<TokensPageData, ApiError> {
    let caller = caller()?;
    let tokens = backend()?.list_tokens(&caller).await?;
    Ok(TokensPageData { tokens, my_roles: caller.roles.iter().copied().collect() })
}

/// Creates an API token for the caller (`owner` must be empty or the caller: a token acts for
/// the user who creates it); `expires_in_days` empty means never; `environments` (comma-separated)
/// for an agent token.
#[server]
pub async fn create_token(
    name: String,
    owner: String,
    roles: Option<RoleChoice>,
    expires_in_days: String,
    #[server(default)] environments: Option<String>,
) -> Result<CreatedToken, ApiError> {
    let expires_in_days = match expires_in_days.trim() {
        "" => None,
        days => Some(
            days.parse::<u32>().map_err(|_| ApiError::invalid("expires_in_days", "must be a whole number of days"))?,
        ),
    };
    let owner = Some(owner.trim().to_string()).filter(|o| !o.is_empty());
    let environments =
        environments.unwrap_or_default().split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
    let input = NewToken { name, owner, roles: roles.unwrap_or_default().roles(), environments, expires_in_days };
    backend()?.create_token(&caller()?, input).await
}

#[server]
pub async fn revoke_token(id: i64) -> Result<ApiToken, ApiError> {
    backend()?.revoke_token(&caller()?, id).await
}

#[server]
pub async fn set_user_roles(username: String, roles: Option<RoleChoice>) -> Result<User, ApiError> {
    let patch = UserPatch { roles: Some(roles.unwrap_or_default().roles()), ..Default::default() };
    backend()?.update_user(&caller()?, &username, patch).await
}
