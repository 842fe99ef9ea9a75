//! Guardrails: rules on a model's metrics per environment, and the health they give each version
//! there — re-evaluated inside every ingest and every rule change, stored, and announced when it changes.

use std::collections::{BTreeMap, HashMap};

use app::domain::*;
use app::error::ApiError;
use sqlx::AnyConnection;

use super::baseline::{self, Subject};
use super::chunks::{BLOCK_CHUNKS, CHUNK_POINTS};
use super::{Appended, SeriesKey, chunk_points};
use crate::audit::{AuditActor, AuditLog, Change, Target};
use crate::clock::rfc3339;
use crate::store::Store;
use crate::versions::model_id;

#[derive(sqlx::FromRow)]
struct GuardrailRow {
    id: i64,
    model: String,
    environment_id: i64,
    environment: String,
    metric: String,
    source: String,
    aggregation: String,
    window_points: Option<i64>,
    window_minutes: Option<i64>,
    comparator: String,
    threshold: f64,
    comparison: Option<String>,
    severity: String,
    enforced: i64,
    updated_at: i64,
    updated_by: String,
}

impl GuardrailRow {
    fn into_guardrail(self) -> (i64, Guardrail) {
        let window = match (self.window_points, self.window_minutes) {
            (_, Some(m)) => Window::Minutes(m),
            (n, None) => Window::Points(n.unwrap_or(1)),
        };
        // A comparison rule leaves the threshold columns empty.
        let comparison: Option<Comparison> = self.comparison.as_deref().and_then(|c| serde_json::from_str(c).ok());
        let threshold_rule = comparison.is_none();
        let guardrail = Guardrail {
            id: self.id,
            model: self.model,
            environment: self.environment,
            metric: self.metric,
            source: MetricSource::parse(&self.source).unwrap_or(MetricSource::Live),
            aggregation: Aggregation::parse(&self.aggregation).filter(|_| threshold_rule),
            window,
            comparator: Comparator::parse(&self.comparator).filter(|_| threshold_rule),
            threshold: Some(self.threshold).filter(|_| threshold_rule),
            comparison,
            severity: Severity::parse(&self.severity).unwrap_or_default(),
            enforced: self.enforced != 0,
            updated_at: rfc3339(self.updated_at),
            updated_by: self.updated_by,
        };
        (self.environment_id, guardrail)
    }
}

/// A model's guardrails with their environment ids, in environment order; one environment's when named.
async fn rules(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: Option<i64>,
) -> Result<Vec<(i64, Guardrail)>, ApiError> {
    let rows: Vec<GuardrailRow> = sqlx::query_as(
        "SELECT g.id, m.name AS model, g.environment_id, e.name AS environment, g.metric, g.source, g.aggregation, \
         g.window_points, g.window_minutes, g.comparator, g.threshold, g.comparison, g.severity, g.enforced, \
         g.updated_at, g.updated_by \
         FROM guardrails g JOIN models m ON m.id = g.model_id JOIN environments e ON e.id = g.environment_id \
         WHERE g.model_id = $1 AND ($2 = 0 OR g.environment_id = $2) ORDER BY e.position, e.id, g.id",
    )
    .bind(model_id)
    .bind(environment_id.unwrap_or(0))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(GuardrailRow::into_guardrail).collect())
}

/// A model's guardrails, in environment order.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: Option<i64>,
) -> Result<Vec<Guardrail>, ApiError> {
    Ok(rules(conn, model_id, environment_id).await?.into_iter().map(|(_, g)| g).collect())
}

/// The two levels of stored stats: blocks of chunks, and chunks.
#[derive(Clone, Copy)]
enum Level {
    Blocks,
    Chunks,
}

/// What a rule's window holds: how many points, and their aggregate.
struct WindowTally {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    last: Option<f64>,
    /// Every value, kept only for percentiles.
    values: Vec<f64>,
}

impl WindowTally {
    fn new() -> Self {
        Self { count: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, last: None, values: Vec::new() }
    }

    fn add_point(&mut self, value: f64, keep: bool) {
        (self.count, self.sum, self.min, self.max, self.last) =
            (self.count + 1, self.sum + value, self.min.min(value), self.max.max(value), Some(value));
        if keep {
            self.values.push(value);
        }
    }

    /// Whole chunks or blocks from their stats.
    fn add_chunks(&mut self, count: i64, sum: f64, low: f64, high: f64) {
        (self.count, self.sum, self.min, self.max) =
            (self.count + count, self.sum + sum, self.min.min(low), self.max.max(high));
    }

    /// Adds the stats of the rows of `level` wholly inside the window (from `since`), optionally
    /// only chunks of the given block range whose block starts before the window; returns the
    /// first and last number of the rows where the window starts, which hold points on both sides.
    async fn add_stats(
        &mut self,
        conn: &mut AnyConnection,
        level: Level,
        series_id: i64,
        since: i64,
        within_blocks: Option<(i64, i64)>,
    ) -> Result<(Option<i64>, Option<i64>), ApiError> {
        let (table, no) = match level {
            Level::Blocks => ("metric_blocks", "block_no"),
            Level::Chunks => ("metric_chunks", "chunk_no"),
        };
        let (from, to) = within_blocks.unwrap_or((i64::MIN, i64::MAX));
        // Chunks are taken only from blocks that straddle the window's start (whole blocks are
        // already counted); the range bounds the scan, the subquery excludes whole blocks in it.
        let straddling = if within_blocks.is_some() {
            format!(
                " AND chunk_no / {BLOCK_CHUNKS} IN (SELECT block_no FROM metric_blocks \
                 WHERE series_id = $1 AND at_min < $2 AND at_max >= $2)"
            )
        } else {
            String::new()
        };
        let (count, sum, low, high, first, last): (i64, f64, Option<f64>, Option<f64>, Option<i64>, Option<i64>) =
            sqlx::query_as(&format!(
                "SELECT CAST(COALESCE(SUM(CASE WHEN at_min >= $2 THEN point_count END), 0) AS BIGINT), \
                 COALESCE(SUM(CASE WHEN at_min >= $2 THEN value_sum END), 0.0), \
                 MIN(CASE WHEN at_min >= $2 THEN low_value END), MAX(CASE WHEN at_min >= $2 THEN high_value END), \
                 MIN(CASE WHEN at_min < $2 THEN {no} END), MAX(CASE WHEN at_min < $2 THEN {no} END) \
                 FROM {table} WHERE series_id = $1 AND at_max >= $2 AND {no} >= $3 AND {no} < $4{straddling}"
            ))
            .bind(series_id)
            .bind(since)
            .bind(from)
            .bind(to)
            .fetch_one(&mut *conn)
            .await?;
        if let (Some(low), Some(high)) = (low, high) {
            self.add_chunks(count, sum, low, high);
        }
        Ok((first, last))
    }

    fn aggregate(&self, aggregation: Option<Aggregation>) -> Option<f64> {
        let aggregation = aggregation?;
        if self.count == 0 {
            return None;
        }
        match aggregation {
            Aggregation::Last => self.last,
            Aggregation::Mean => Some(self.sum / self.count as f64),
            Aggregation::Min => Some(self.min),
            Aggregation::Max => Some(self.max),
            Aggregation::P95 | Aggregation::P99 => aggregation.apply(&self.values),
        }
    }
}

/// The points a rule looks at for one version: the window of the matching series. A window of
/// the last N points that the ingest in progress just appended is taken from those points; a time
/// window sums the stats (count, sum, extremes) of whole blocks, then of whole chunks where the
/// window starts, in the database, and decodes only the chunks where it starts — unless a
/// percentile needs every value.
async fn window(
    conn: &mut AnyConnection,
    (version_id, environment_id): (i64, i64),
    rule: &Guardrail,
    now: i64,
    appended: &Appended,
) -> Result<WindowTally, ApiError> {
    let key = SeriesKey {
        key: rule.metric.clone(),
        source: rule.source,
        environment_id: if rule.source == MetricSource::Live { environment_id } else { 0 },
    };
    let percentile = matches!(rule.aggregation, Some(Aggregation::P95 | Aggregation::P99));
    let mut tally = WindowTally::new();
    if let (Window::Points(n), Some((_, fresh))) = (rule.window, appended.get(&key))
        && fresh.len() as i64 >= n
    {
        for p in &fresh[fresh.len() - n as usize..] {
            tally.add_point(p.value, percentile);
        }
        return Ok(tally);
    }
    let series: Option<(i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT id, chunk_count, last_at, last_value FROM metric_series \
         WHERE version_id = $1 AND key = $2 AND source = $3 AND environment_id = $4",
    )
    .bind(version_id)
    .bind(&key.key)
    .bind(key.source.as_str())
    .bind(key.environment_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((series_id, chunk_count, last_at, last_value)) = series else { return Ok(tally) };
    let since = match rule.window {
        Window::Points(n) => {
            let chunks = (n as usize).div_ceil(CHUNK_POINTS) as i64 + 1;
            let nos: Vec<i64> = ((chunk_count - chunks).max(0)..chunk_count).collect();
            let mut decoded = chunk_points(conn, series_id, &nos).await?;
            let values: Vec<f64> =
                nos.iter().flat_map(|no| decoded.remove(no).unwrap_or_default()).map(|p| p.value).collect();
            for v in &values[values.len().saturating_sub(n as usize)..] {
                tally.add_point(*v, percentile);
            }
            return Ok(tally);
        }
        Window::Minutes(m) => now - m * 60_000,
    };
    // The newest arrival is the window's last point when it is inside the window (almost always);
    // otherwise, as for percentiles, every point of the window is read.
    let every_point = percentile || (rule.aggregation == Some(Aggregation::Last) && last_at < since);
    let decode: Vec<i64> = if every_point {
        sqlx::query_scalar("SELECT chunk_no FROM metric_chunks WHERE series_id = $1 AND at_max >= $2 ORDER BY chunk_no")
            .bind(series_id)
            .bind(since)
            .fetch_all(&mut *conn)
            .await?
    } else {
        // Blocks inside the window count from their stats; the blocks where it starts (usually one)
        // go down to their chunks, which count from their stats too; only the chunks where the
        // window starts are read point by point.
        let (first_block, last_block) = tally.add_stats(conn, Level::Blocks, series_id, since, None).await?;
        match (first_block, last_block) {
            (Some(first), Some(last)) => {
                let blocks = (first * BLOCK_CHUNKS, (last + 1) * BLOCK_CHUNKS);
                match tally.add_stats(conn, Level::Chunks, series_id, since, Some(blocks)).await? {
                    (Some(first), Some(last)) => {
                        sqlx::query_scalar(
                            "SELECT chunk_no FROM metric_chunks WHERE series_id = $1 AND chunk_no >= $2 \
                         AND chunk_no <= $3 AND at_min < $4 AND at_max >= $4 ORDER BY chunk_no",
                        )
                        .bind(series_id)
                        .bind(first)
                        .bind(last)
                        .bind(since)
                        .fetch_all(&mut *conn)
                        .await?
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    };
    let mut decoded = chunk_points(conn, series_id, &decode).await?;
    for no in &decode {
        for p in decoded.remove(no).unwrap_or_default().iter().filter(|p| p.timestamp >= since) {
            tally.add_point(p.value, percentile);
        }
    }
    if !every_point && last_at >= since {
        tally.last = Some(last_value);
    }
    Ok(tally)
}

/// Each rule's recorded verdict on a version (a rule without one has had no data).
async fn recorded_verdicts(conn: &mut AnyConnection, version_id: i64) -> Result<HashMap<i64, Outcome>, ApiError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT guardrail_id, outcome FROM guardrail_verdicts WHERE version_id = $1")
            .bind(version_id)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().filter_map(|(id, o)| Some((id, Outcome::parse(&o)?))).collect())
}

/// How comparison rules are evaluated: judged now (a rule change, the minute sweep, a read), or
/// taken from their recorded verdicts (an ingest: threshold rules only move with points).
#[derive(Clone, Copy)]
enum Comparisons<'a> {
    Judge,
    Recorded(&'a HashMap<i64, Outcome>),
}

/// Every rule of one environment evaluated against one version.
async fn checks(
    conn: &mut AnyConnection,
    subject: Subject,
    rules: &[Guardrail],
    (now, appended): (i64, &Appended),
    comparisons: Comparisons<'_>,
) -> Result<Vec<GuardrailCheck>, ApiError> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        match (rule.comparison, comparisons) {
            (Some(_), Comparisons::Recorded(verdicts)) => {
                let outcome = verdicts.get(&rule.id).copied().unwrap_or(Outcome::NoData);
                out.push(GuardrailCheck { outcome, ..GuardrailCheck::threshold(rule.clone(), 0, None) });
            }
            (Some(comparison), Comparisons::Judge) => {
                out.push(baseline::check(conn, subject, rule, comparison, now).await?);
            }
            (None, _) => {
                let tally = window(conn, (subject.version_id, subject.environment_id), rule, now, appended).await?;
                out.push(GuardrailCheck::threshold(rule.clone(), tally.count, tally.aggregate(rule.aggregation)));
            }
        }
    }
    Ok(out)
}

/// Stores each rule's outcome for the version and appends an audit entry for each that changed
/// from `recorded`.
async fn record_verdicts(
    conn: &mut AnyConnection,
    log: &AuditLog,
    (model, number, version_id): (&str, i64, i64),
    (checks, recorded): (&[GuardrailCheck], &HashMap<i64, Outcome>),
    now: i64,
) -> Result<(), ApiError> {
    for check in checks {
        let id = check.guardrail.id;
        let previous = recorded.get(&id).copied().unwrap_or(Outcome::NoData);
        if previous == check.outcome {
            continue;
        }
        sqlx::query(
            "INSERT INTO guardrail_verdicts (guardrail_id, version_id, outcome, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (guardrail_id, version_id) DO UPDATE SET outcome = excluded.outcome, since = excluded.since",
        )
        .bind(id)
        .bind(version_id)
        .bind(check.outcome.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let target = Target::guardrail(model, &check.guardrail.environment, id).at_version(number);
        let change = Change::new(AuditAction::GuardrailVerdict, target)
            .before(&serde_json::json!({ "outcome": previous }))
            .after(&serde_json::json!({
                "outcome": check.outcome,
                "rule": check.guardrail.describe(),
                "enforced": check.guardrail.enforced,
                "evidence": check.evidence_text(),
                "points": check.points,
                "baseline": check.baseline,
            }));
        crate::audit::append(conn, log, AuditActor::system("guardrails"), change).await?;
    }
    Ok(())
}

/// Evaluates an environment's rules against a version, records the verdicts, stores the health.
async fn evaluate(
    conn: &mut AnyConnection,
    log: &AuditLog,
    (model, subject): (&str, Subject),
    (environment, rules): (&str, &[Guardrail]),
    now: i64,
    appended: Option<&Appended>,
) -> Result<Option<HealthChange>, ApiError> {
    let recorded = recorded_verdicts(conn, subject.version_id).await?;
    let checks = match appended {
        Some(appended) => checks(conn, subject, rules, (now, appended), Comparisons::Recorded(&recorded)).await?,
        None => checks(conn, subject, rules, (now, &Appended::new()), Comparisons::Judge).await?,
    };
    record_verdicts(conn, log, (model, subject.number, subject.version_id), (&checks, &recorded), now).await?;
    let health = HealthReport::verdict(&checks);
    set_health(conn, (subject.version_id, subject.number), (subject.environment_id, environment), health, now).await
}

/// A version's health moving from one value to another in an environment.
#[derive(Debug, Clone)]
pub(crate) struct HealthChange {
    pub version: i64,
    pub environment: String,
    pub health: Health,
    pub previous: Health,
}

impl HealthChange {
    pub fn event(self, model: &str) -> ServerEvent {
        ServerEvent::Health {
            model: model.to_string(),
            version: self.version,
            environment: self.environment,
            health: self.health,
            previous: self.previous,
        }
    }
}

/// Stores the events of health changes in the transaction that made them.
pub(crate) async fn announce_health(
    conn: &mut AnyConnection,
    model: &str,
    changes: &[HealthChange],
    now: i64,
) -> Result<(), ApiError> {
    for change in changes {
        crate::events::record(conn, &change.clone().event(model), now).await?;
    }
    Ok(())
}

/// Stores a version's health in an environment; the change, if it is one.
async fn set_health(
    conn: &mut AnyConnection,
    (version_id, number): (i64, i64),
    (environment_id, environment): (i64, &str),
    health: Health,
    now: i64,
) -> Result<Option<HealthChange>, ApiError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT health FROM version_health WHERE version_id = $1 AND environment_id = $2")
            .bind(version_id)
            .bind(environment_id)
            .fetch_optional(&mut *conn)
            .await?;
    let previous = stored.as_deref().and_then(Health::parse);
    if previous == Some(health) {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO version_health (version_id, environment_id, health, evaluated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (version_id, environment_id) DO UPDATE SET health = excluded.health, evaluated_at = excluded.evaluated_at",
    )
    .bind(version_id)
    .bind(environment_id)
    .bind(health.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Some(HealthChange {
        version: number,
        environment: environment.to_string(),
        health,
        previous: previous.unwrap_or_default(),
    }))
}

/// Rules grouped by environment (id and name), in environment order.
fn by_environment(rules: Vec<(i64, Guardrail)>) -> Vec<((i64, String), Vec<Guardrail>)> {
    let mut order: Vec<(i64, String)> = Vec::new();
    let mut groups: BTreeMap<i64, Vec<Guardrail>> = BTreeMap::new();
    for (env, rule) in rules {
        if !groups.contains_key(&env) {
            order.push((env, rule.environment.clone()));
        }
        groups.entry(env).or_default().push(rule);
    }
    order
        .into_iter()
        .map(|key| {
            let rules = groups.remove(&key.0).unwrap_or_default();
            (key, rules)
        })
        .collect()
}

/// After points were appended to series of a version: re-evaluates its health in each
/// environment with a threshold rule on one of them. Comparison rules keep their recorded verdicts
/// here: they are judged by the minute sweep and on rule changes, since a window of thousands of
/// points on each side would otherwise be read again for every batch (the sequential test stays
/// valid however its looks are scheduled).
pub(crate) async fn reevaluate(
    conn: &mut AnyConnection,
    log: &AuditLog,
    (model, model_id): (&str, i64),
    (version_id, number): (i64, i64),
    appended: &Appended,
    now: i64,
) -> Result<Vec<HealthChange>, ApiError> {
    let all = rules(conn, model_id, None).await?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let mut changes = Vec::new();
    for ((env_id, env), rules) in by_environment(all) {
        let affected = rules.iter().filter(|r| r.comparison.is_none()).any(|r| {
            appended.keys().any(|t| {
                t.key == r.metric
                    && t.source == r.source
                    && (r.source == MetricSource::Eval || t.environment_id == env_id)
            })
        });
        if !affected {
            continue;
        }
        let subject = Subject { model_id, version_id, number, environment_id: env_id };
        changes.extend(evaluate(conn, log, (model, subject), (&env, &rules), now, Some(appended)).await?);
    }
    Ok(changes)
}

/// After an environment's rules changed, or as time passes: re-evaluates every version of the
/// model that has points the rules may read, a stored health there, or is live there.
async fn reevaluate_environment(
    conn: &mut AnyConnection,
    log: &AuditLog,
    (model, model_id): (&str, i64),
    (environment_id, environment): (i64, &str),
    now: i64,
) -> Result<Vec<HealthChange>, ApiError> {
    let env_rules = load(conn, model_id, Some(environment_id)).await?;
    let versions: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT v.id, v.number FROM versions v WHERE v.model_id = $1 AND ( \
           EXISTS (SELECT 1 FROM metric_series s WHERE s.version_id = v.id AND s.environment_id IN (0, $2)) \
           OR EXISTS (SELECT 1 FROM version_health h WHERE h.version_id = v.id AND h.environment_id = $2) \
           OR EXISTS (SELECT 1 FROM deployments d WHERE d.model_id = v.model_id AND d.environment_id = $2 \
                      AND d.version_number = v.number)) ORDER BY v.number",
    )
    .bind(model_id)
    .bind(environment_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut changes = Vec::new();
    for (version_id, number) in versions {
        let subject = Subject { model_id, version_id, number, environment_id };
        let rules = (environment, env_rules.as_slice());
        changes.extend(evaluate(conn, log, (model, subject), rules, now, None).await?);
    }
    Ok(changes)
}

impl Store {
    /// Re-evaluates every model and environment that has a time-window or a comparison rule
    /// (windows move on as time passes, points or not: a series that fell silent ends up unknown;
    /// a baseline may change); returns how many verdicts changed. The server runs this every minute.
    pub async fn reevaluate_time_windows(&self) -> Result<usize, ApiError> {
        let targets: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT DISTINCT g.model_id, m.name, g.environment_id, e.name FROM guardrails g \
             JOIN models m ON m.id = g.model_id JOIN environments e ON e.id = g.environment_id \
             WHERE g.window_minutes IS NOT NULL OR g.comparison IS NOT NULL ORDER BY g.model_id, g.environment_id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut changed = 0;
        for (model_id, model, environment_id, environment) in targets {
            let mut tx = self.begin_data_write().await?;
            let now = self.clock.now_ms();
            let changes =
                reevaluate_environment(&mut tx, &self.audit, (&model, model_id), (environment_id, &environment), now)
                    .await?;
            announce_health(&mut tx, &model, &changes, now).await?;
            tx.commit().await?;
            changed += changes.len();
            self.health_changed(&model, changes).await;
        }
        Ok(changed)
    }
}

/// A version's health in every environment that has rules, with each rule evaluated now.
pub(crate) async fn reports(
    conn: &mut AnyConnection,
    model_id: i64,
    version_id: i64,
    now: i64,
) -> Result<Vec<HealthReport>, ApiError> {
    let mut out = Vec::new();
    let number: i64 =
        sqlx::query_scalar("SELECT number FROM versions WHERE id = $1").bind(version_id).fetch_one(&mut *conn).await?;
    for ((env_id, environment), rules) in by_environment(rules(conn, model_id, None).await?) {
        let subject = Subject { model_id, version_id, number, environment_id: env_id };
        let checks = checks(conn, subject, &rules, (now, &Appended::new()), Comparisons::Judge).await?;
        out.push(HealthReport { environment, health: HealthReport::verdict(&checks), checks });
    }
    Ok(out)
}

/// The environment id a rule names, or 422 on `environment`.
async fn rule_environment(conn: &mut AnyConnection, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM environments WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::invalid("environment", format!("no environment named '{name}'")))
}

/// One guardrail of a model with its environment id, or 404.
pub(crate) async fn find(
    conn: &mut AnyConnection,
    model_id: i64,
    model: &str,
    id: i64,
) -> Result<(i64, Guardrail), ApiError> {
    rules(conn, model_id, None)
        .await?
        .into_iter()
        .find(|(_, g)| g.id == id)
        .ok_or_else(|| ApiError::not_found(format!("model '{model}' has no guardrail {id}")))
}

/// Creates a guardrail (`id` = None) or replaces one; audited, and health re-evaluated in the same transaction.
pub(crate) async fn save(
    store: &Store,
    caller: &Caller,
    model: &str,
    id: Option<i64>,
    input: GuardrailInput,
) -> Result<Guardrail, ApiError> {
    input.validate()?;
    let now = store.clock.now_ms();
    let mut tx = store.begin_write().await?;
    let model_id = model_id(&mut tx, model).await?;
    let env_id = rule_environment(&mut tx, &input.environment).await?;
    let (points, minutes) = match input.window {
        Window::Points(n) => (Some(n), None),
        Window::Minutes(m) => (None, Some(m)),
    };
    let before = match id {
        Some(id) => Some(find(&mut tx, model_id, model, id).await?),
        None => None,
    };
    // A new rule is observed unless an admin says otherwise; an edit keeps the mode; only admins change it.
    let was_enforced = before.as_ref().is_some_and(|(_, b)| b.enforced);
    let enforced = input.enforced.unwrap_or(was_enforced);
    if enforced != was_enforced {
        caller.require(Permission::EnforceGuardrails)?;
    }
    let comparison =
        input.comparison.map(|c| serde_json::to_string(&c)).transpose().map_err(|_| ApiError::internal())?;
    let sql = if before.is_some() {
        "UPDATE guardrails SET environment_id = $2, metric = $3, source = $4, aggregation = $5, window_points = $6, \
         window_minutes = $7, comparator = $8, threshold = $9, severity = $10, updated_at = $11, updated_by = $12, \
         comparison = $13, enforced = $14 WHERE id = $15 AND model_id = $1 RETURNING id"
    } else {
        "INSERT INTO guardrails (model_id, environment_id, metric, source, aggregation, window_points, window_minutes, \
         comparator, threshold, severity, updated_at, updated_by, comparison, enforced) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id"
    };
    let mut query = sqlx::query_scalar::<_, i64>(sql)
        .bind(model_id)
        .bind(env_id)
        .bind(&input.metric)
        .bind(input.source.as_str())
        .bind(input.aggregation.map_or("", Aggregation::as_str))
        .bind(points)
        .bind(minutes)
        .bind(input.comparator.map_or("", Comparator::as_str))
        .bind(input.threshold.unwrap_or_default())
        .bind(input.severity.as_str())
        .bind(now)
        .bind(caller.actor().name)
        .bind(comparison)
        .bind(i64::from(enforced));
    if let Some(id) = id {
        query = query.bind(id);
    }
    let new_id = query.fetch_one(&mut *tx).await?;
    let (_, after) = find(&mut tx, model_id, model, new_id).await?;
    let log = &store.audit;
    let mut changes =
        reevaluate_environment(&mut tx, log, (model, model_id), (env_id, &input.environment), now).await?;
    if let Some((old_env, old)) = before.as_ref().filter(|(env, _)| *env != env_id) {
        changes
            .extend(reevaluate_environment(&mut tx, log, (model, model_id), (*old_env, &old.environment), now).await?);
    }
    let target = Target::guardrail(model, &after.environment, new_id);
    let change = match &before {
        Some((_, old)) if enforced && !was_enforced => {
            Change::new(AuditAction::GuardrailEnforce, target).before(old).after(&after)
        }
        Some((_, old)) => Change::new(AuditAction::GuardrailUpdate, target).before(old).after(&after),
        None => Change::new(AuditAction::GuardrailCreate, target).after(&after),
    };
    for c in &changes {
        tx.announce(c.clone().event(model));
    }
    tx.commit(caller, change).await?;
    store.health_changed(model, changes).await;
    Ok(after)
}

/// Deletes a guardrail; audited, and health re-evaluated without it.
pub(crate) async fn delete(store: &Store, caller: &Caller, model: &str, id: i64) -> Result<Guardrail, ApiError> {
    let now = store.clock.now_ms();
    let mut tx = store.begin_write().await?;
    let model_id = model_id(&mut tx, model).await?;
    let (env_id, before) = find(&mut tx, model_id, model, id).await?;
    sqlx::query("DELETE FROM guardrail_verdicts WHERE guardrail_id = $1").bind(id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM guardrails WHERE id = $1").bind(id).execute(&mut *tx).await?;
    let changes =
        reevaluate_environment(&mut tx, &store.audit, (model, model_id), (env_id, &before.environment), now).await?;
    let change =
        Change::new(AuditAction::GuardrailDelete, Target::guardrail(model, &before.environment, id)).before(&before);
    for c in &changes {
        tx.announce(c.clone().event(model));
    }
    tx.commit(caller, change).await?;
    store.health_changed(model, changes).await;
    Ok(before)
}
