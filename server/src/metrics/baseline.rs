//! Comparison rules: the baseline a version is compared with (the version it replaced in the
//! environment), the points each side brings (the same minutes while both serve, else the
//! baseline's last window before the switch), and the check that results.

use app::domain::*;
use app::error::ApiError;
use sqlx::AnyConnection;

use super::chunk_points;
use super::compare::Test;

/// A version as a rule in one environment sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject {
    pub model_id: i64,
    pub version_id: i64,
    pub number: i64,
    pub environment_id: i64,
}

/// The version a comparison is made against, and when the subject took its place (if it did).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BaselineVersion {
    pub version_id: i64,
    pub number: i64,
    pub switched_at: Option<i64>,
}

/// The baseline of `subject`: the version it last replaced in the environment (and when), or,
/// when it never went live there (a canary), the version live there now.
pub(crate) async fn baseline(conn: &mut AnyConnection, s: Subject) -> Result<Option<BaselineVersion>, ApiError> {
    let replaced: Option<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT from_version, created_at FROM deployment_history \
         WHERE model_id = $1 AND environment_id = $2 AND to_version = $3 ORDER BY revision DESC LIMIT 1",
    )
    .bind(s.model_id)
    .bind(s.environment_id)
    .bind(s.number)
    .fetch_optional(&mut *conn)
    .await?;
    let (number, switched_at) = match replaced {
        Some((Some(from), at)) if from != s.number => (from, Some(at)),
        Some(_) => return Ok(None),
        None => {
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT version_number FROM deployments WHERE model_id = $1 AND environment_id = $2",
            )
            .bind(s.model_id)
            .bind(s.environment_id)
            .fetch_optional(&mut *conn)
            .await?;
            match live {
                Some(live) if live != s.number => (live, None),
                _ => return Ok(None),
            }
        }
    };
    let version_id: Option<i64> = sqlx::query_scalar("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
        .bind(s.model_id)
        .bind(number)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(version_id.map(|version_id| BaselineVersion { version_id, number, switched_at }))
}

/// A version's points of `metric` up to `until`, in time order — live ones in an environment, or
/// its evaluation's (`environment_id` 0): those of the window ending there (the last N, or the
/// last T minutes), or every one when `window` is None.
pub(crate) async fn series_points(
    conn: &mut AnyConnection,
    (version_id, environment_id): (i64, i64),
    (metric, source): (&str, MetricSource),
    window: Option<Window>,
    until: i64,
) -> Result<Vec<MetricPoint>, ApiError> {
    let series: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM metric_series WHERE version_id = $1 AND key = $2 AND source = $3 AND environment_id = $4",
    )
    .bind(version_id)
    .bind(metric)
    .bind(source.as_str())
    .bind(if source == MetricSource::Live { environment_id } else { 0 })
    .fetch_optional(&mut *conn)
    .await?;
    let Some(series_id) = series else { return Ok(Vec::new()) };
    let since = match window {
        Some(Window::Minutes(m)) => until - m * 60_000,
        _ => i64::MIN,
    };
    let chunks: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT chunk_no, point_count FROM metric_chunks WHERE series_id = $1 AND at_min <= $2 AND at_max >= $3 \
         ORDER BY chunk_no DESC",
    )
    .bind(series_id)
    .bind(until)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    // For the last N points, chunks from the newest back until N are covered (and one more, for
    // points of the newest that lie after `until`).
    let mut nos: Vec<i64> = match window {
        Some(Window::Points(n)) => {
            let mut covered = 0;
            let mut nos = Vec::new();
            for (no, count) in chunks {
                nos.push(no);
                if covered >= n {
                    break;
                }
                covered += count;
            }
            nos
        }
        _ => chunks.into_iter().map(|(no, _)| no).collect(),
    };
    nos.sort_unstable();
    let mut decoded = chunk_points(conn, series_id, &nos).await?;
    let mut points: Vec<MetricPoint> = nos.iter().flat_map(|no| decoded.remove(no).unwrap_or_default()).collect();
    points.sort_by_key(|p| p.timestamp);
    points.truncate(points.partition_point(|p| p.timestamp <= until));
    Ok(match window {
        Some(window) => window_of(&points, window, until).to_vec(),
        None => points,
    })
}

/// The last points of `window` (by count or by minutes) among `points` (time-ordered) up to `until`.
pub(crate) fn window_of(points: &[MetricPoint], window: Window, until: i64) -> &[MetricPoint] {
    let end = points.partition_point(|p| p.timestamp <= until);
    let start = match window {
        Window::Points(n) => end.saturating_sub(n as usize),
        Window::Minutes(m) => points.partition_point(|p| p.timestamp < until - m * 60_000),
    };
    &points[start.min(end)..end]
}

/// The baseline's side for a candidate window starting at `start` and ending at `until`: its
/// points over the same minutes when it has at least `min_points` there (both serving), else its
/// last window before the switch (or before `until` when the subject never replaced it).
pub(crate) fn baseline_side(
    baseline: &[MetricPoint],
    window: Window,
    (start, until): (i64, i64),
    min_points: usize,
    switched_at: Option<i64>,
) -> (&[MetricPoint], bool) {
    let from = baseline.partition_point(|p| p.timestamp < start);
    let to = baseline.partition_point(|p| p.timestamp <= until);
    let same_minutes = window_of(&baseline[from..to.max(from)], window, until);
    if same_minutes.len() >= min_points.max(2) {
        return (same_minutes, true);
    }
    let before = switched_at.map_or(until, |at| at - 1);
    (window_of(baseline, window, before), false)
}

fn values(points: &[MetricPoint]) -> Vec<f64> {
    points.iter().map(|p| p.value).collect()
}

/// The comparison at `until`: the candidate's window ending then against the baseline's side
/// (both from time-ordered points); whether that side was over the same minutes.
pub(crate) fn judge(
    test: Test,
    window: Window,
    (candidate, baseline): (&[MetricPoint], &[MetricPoint]),
    until: i64,
    switched_at: Option<i64>,
) -> (ComparisonEvidence, bool) {
    let candidate = window_of(candidate, window, until);
    let start = candidate.first().map_or(until, |p| p.timestamp);
    let (side, concurrent) = baseline_side(baseline, window, (start, until), test.min_points, switched_at);
    (test.compare(&values(side), &values(candidate)), concurrent)
}

/// A comparison rule evaluated against `subject` now.
pub(crate) async fn check(
    conn: &mut AnyConnection,
    subject: Subject,
    rule: &Guardrail,
    comparison: Comparison,
    now: i64,
) -> Result<GuardrailCheck, ApiError> {
    let test = Test(comparison);
    let target = (subject.version_id, subject.environment_id);
    let live = (rule.metric.as_str(), MetricSource::Live);
    // Judged as of now, or of its newest point when a client's clock runs ahead.
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(c.at_max) FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id \
         WHERE s.version_id = $1 AND s.key = $2 AND s.source = 'live' AND s.environment_id = $3",
    )
    .bind(subject.version_id)
    .bind(&rule.metric)
    .bind(subject.environment_id)
    .fetch_one(&mut *conn)
    .await?;
    let now = newest.map_or(now, |at| at.max(now));
    let candidate = series_points(conn, target, live, Some(rule.window), now).await?;
    let Some(base) = baseline(conn, subject).await? else {
        return Ok(GuardrailCheck::comparison(rule.clone(), no_baseline(test, &candidate, subject, rule), None));
    };
    // The two windows the baseline's side may come from, joined in time order.
    let base_target = (base.version_id, subject.environment_id);
    let mut points = match base.switched_at {
        Some(at) => series_points(conn, base_target, live, Some(rule.window), at - 1).await?,
        None => Vec::new(),
    };
    let recent = series_points(conn, base_target, live, Some(rule.window), now).await?;
    let first_recent = recent.first().map_or(i64::MAX, |p| p.timestamp);
    points.retain(|p| p.timestamp < first_recent);
    points.extend(recent);
    let (evidence, concurrent) = judge(test, rule.window, (&candidate, &points), now, base.switched_at);
    Ok(GuardrailCheck::comparison(rule.clone(), evidence, Some(Baseline { version: base.number, concurrent })))
}

/// The evidence of a comparison without a baseline: no data, and why.
pub(crate) fn no_baseline(
    test: Test,
    candidate: &[MetricPoint],
    subject: Subject,
    rule: &Guardrail,
) -> ComparisonEvidence {
    let mut evidence = test.compare(&[], &values(candidate));
    evidence.note = Some(format!("no baseline: v{} replaced no version in {}", subject.number, rule.environment));
    evidence
}
