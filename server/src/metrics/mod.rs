//! Metric points of versions: ingest into chunked series, the list of series, downsampled reads,
//! and the raw points streamed for CSV export. Guardrails and health live in [`guardrails`].

pub mod baseline;
pub mod chunks;
pub mod compare;
pub mod guardrails;
pub mod replay;

use std::collections::HashMap;

use app::backend::Metrics;
use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use futures::{Stream, StreamExt};
use sqlx::AnyConnection;

use crate::audit::AuditLog;
use crate::metrics::guardrails::HealthChange;
use crate::store::Store;
use crate::versions::{model_id, stored_health};
use chunks::{
    BLOCK_CHUNKS, CHUNK_POINTS, ChunkStats, Unit, bucket_points, bucket_size, buckets, pack, position, unpack,
};

/// The versions a models-list sparkline shows at most.
const TREND_VERSIONS: usize = 24;

/// The key a model's metrics lead with: the one most versions have (a guarded one, then the first
/// by name, among equals), from each key's count of versions.
fn leading_key(counts: &[(String, i64)], guarded: &[String]) -> Option<String> {
    counts.iter().max_by_key(|(k, n)| (*n, guarded.contains(k), std::cmp::Reverse(k.clone()))).map(|(k, _)| k.clone())
}

/// Each model's key metric across its newest versions, for a page of models: two queries, the
/// series' stored last values (a version's evaluation series first, else its first live one).
pub(crate) async fn key_metric_trends(
    conn: &mut AnyConnection,
    model_ids: &[i64],
) -> Result<HashMap<i64, KeyMetricTrend>, ApiError> {
    if model_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=model_ids.len()).map(|i| format!("${i}")).collect();
    let within = placeholders.join(", ");
    let series_sql = format!(
        "SELECT v.model_id, s.key, v.number, s.last_value FROM {SERIES_FROM} JOIN versions v ON v.id = s.version_id \
         WHERE v.model_id IN ({within}) ORDER BY v.model_id, s.key, v.number, s.source, e.position, e.id"
    );
    let guards_sql = format!("SELECT model_id, metric FROM guardrails WHERE model_id IN ({within})");
    let mut series = sqlx::query_as::<_, (i64, String, i64, f64)>(&series_sql);
    let mut guards = sqlx::query_as::<_, (i64, String)>(&guards_sql);
    for id in model_ids {
        series = series.bind(*id);
        guards = guards.bind(*id);
    }
    let mut by_key: std::collections::BTreeMap<(i64, String), Vec<VersionValue>> = Default::default();
    for (model, key, version, value) in series.fetch_all(&mut *conn).await? {
        let values = by_key.entry((model, key)).or_default();
        if values.last().is_none_or(|v| v.version != version) {
            values.push(VersionValue { version, value });
        }
    }
    let mut guarded: HashMap<i64, Vec<String>> = HashMap::new();
    for (model, metric) in guards.fetch_all(&mut *conn).await? {
        guarded.entry(model).or_default().push(metric);
    }
    let mut trends = HashMap::new();
    for &model in model_ids {
        let counts: Vec<(String, i64)> = by_key
            .range((model, String::new())..)
            .take_while(|((m, _), _)| *m == model)
            .map(|((_, key), values)| (key.clone(), values.len() as i64))
            .collect();
        let Some(key) = leading_key(&counts, guarded.get(&model).map_or(&[], Vec::as_slice)) else { continue };
        let mut versions = by_key.remove(&(model, key.clone())).unwrap_or_default();
        versions.drain(..versions.len().saturating_sub(TREND_VERSIONS));
        trends.insert(model, KeyMetricTrend { key, versions });
    }
    Ok(trends)
}

/// The ids of a model and of one of its versions, or 404.
pub(crate) async fn version_ids(conn: &mut AnyConnection, model: &str, number: i64) -> Result<(i64, i64), ApiError> {
    let model_id = model_id(conn, model).await?;
    let id = sqlx::query_scalar::<_, i64>("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
        .bind(model_id)
        .bind(number)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model '{model}' has no version {number}")))?;
    Ok((model_id, id))
}

/// Removes a version's metric series (every chunk, block and point of them) and its health.
pub(crate) async fn forget_version(conn: &mut AnyConnection, version_id: i64) -> Result<(), ApiError> {
    for table in ["metric_chunks", "metric_blocks", "metric_chunk_points"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE series_id IN (SELECT id FROM metric_series WHERE version_id = $1)"
        ))
        .bind(version_id)
        .execute(&mut *conn)
        .await?;
    }
    for table in ["metric_series", "version_health"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE version_id = $1")).bind(version_id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A series row: identity, counts, ends and extremes.
#[derive(sqlx::FromRow)]
struct SeriesRow {
    id: i64,
    key: String,
    source: String,
    environment: Option<String>,
    point_count: i64,
    chunk_count: i64,
    first_step: i64,
    first_at: i64,
    first_value: f64,
    last_step: i64,
    last_at: i64,
    last_value: f64,
    min_value: f64,
    max_value: f64,
    /// Only in queries across versions.
    #[sqlx(default)]
    version_number: Option<i64>,
}

const SERIES_COLUMNS: &str = "s.id, s.key, s.source, e.name AS environment, s.point_count, s.chunk_count, \
     s.first_step, s.first_at, s.first_value, s.last_step, s.last_at, s.last_value, s.min_value, s.max_value";
const SERIES_FROM: &str = "metric_series s LEFT JOIN environments e ON e.id = s.environment_id";

impl SeriesRow {
    fn source(&self) -> MetricSource {
        MetricSource::parse(&self.source).unwrap_or_default()
    }

    fn summary(&self) -> SeriesSummary {
        SeriesSummary {
            key: self.key.clone(),
            source: self.source(),
            environment: self.environment.clone(),
            count: self.point_count,
            first: MetricPoint { step: self.first_step, timestamp: self.first_at, value: self.first_value },
            last: MetricPoint { step: self.last_step, timestamp: self.last_at, value: self.last_value },
            min: self.min_value,
            max: self.max_value,
        }
    }
}

/// Which series a point belongs to, within one version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    pub key: String,
    pub source: MetricSource,
    /// 0 for evaluation points.
    pub environment_id: i64,
}

/// What one ingest appended: per series, its id and the new points (guardrails read their
/// window from these when it fits, instead of from the database).
pub(crate) type Appended = HashMap<SeriesKey, (i64, Vec<MetricPoint>)>;

/// The stats columns of a chunk, without its points.
#[derive(sqlx::FromRow)]
struct ChunkRow {
    chunk_no: i64,
    point_count: i64,
    step_min: i64,
    step_max: i64,
    at_min: i64,
    at_max: i64,
    low_step: i64,
    low_at: i64,
    low_value: f64,
    high_step: i64,
    high_at: i64,
    high_value: f64,
    value_sum: f64,
}

const CHUNK_COLUMNS: &str = "chunk_no, point_count, step_min, step_max, at_min, at_max, low_step, low_at, low_value, \
     high_step, high_at, high_value, value_sum";

impl ChunkRow {
    fn stats(&self) -> ChunkStats {
        ChunkStats {
            count: self.point_count,
            step_min: self.step_min,
            step_max: self.step_max,
            at_min: self.at_min,
            at_max: self.at_max,
            low: MetricPoint { step: self.low_step, timestamp: self.low_at, value: self.low_value },
            high: MetricPoint { step: self.high_step, timestamp: self.high_at, value: self.high_value },
            sum: self.value_sum,
        }
    }
}

/// Writes (or rewrites) one chunk of a series: its stats row and its points.
async fn store_chunk(
    conn: &mut AnyConnection,
    series_id: i64,
    chunk_no: i64,
    points: &[MetricPoint],
) -> Result<(), ApiError> {
    let Some(s) = ChunkStats::of(points) else { return Ok(()) };
    sqlx::query(
        "INSERT INTO metric_chunks (series_id, chunk_no, point_count, step_min, step_max, at_min, at_max, \
         low_step, low_at, low_value, high_step, high_at, high_value, value_sum) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (series_id, chunk_no) DO UPDATE SET point_count = excluded.point_count, \
         step_min = excluded.step_min, step_max = excluded.step_max, at_min = excluded.at_min, \
         at_max = excluded.at_max, low_step = excluded.low_step, low_at = excluded.low_at, \
         low_value = excluded.low_value, high_step = excluded.high_step, high_at = excluded.high_at, \
         high_value = excluded.high_value, value_sum = excluded.value_sum",
    )
    .bind(series_id)
    .bind(chunk_no)
    .bind(s.count)
    .bind(s.step_min)
    .bind(s.step_max)
    .bind(s.at_min)
    .bind(s.at_max)
    .bind(s.low.step)
    .bind(s.low.timestamp)
    .bind(s.low.value)
    .bind(s.high.step)
    .bind(s.high.timestamp)
    .bind(s.high.value)
    .bind(s.sum)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO metric_chunk_points (series_id, chunk_no, points) VALUES ($1, $2, $3) \
         ON CONFLICT (series_id, chunk_no) DO UPDATE SET points = excluded.points",
    )
    .bind(series_id)
    .bind(chunk_no)
    .bind(pack(points))
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes one block's stats from its chunks' rows.
async fn store_block(conn: &mut AnyConnection, series_id: i64, block_no: i64) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO metric_blocks (series_id, block_no, point_count, value_sum, low_value, high_value, at_min, at_max) \
         SELECT $1, $2, SUM(point_count), SUM(value_sum), MIN(low_value), MAX(high_value), MIN(at_min), MAX(at_max) \
         FROM metric_chunks WHERE series_id = $1 AND chunk_no >= $3 AND chunk_no < $4 \
         ON CONFLICT (series_id, block_no) DO UPDATE SET point_count = excluded.point_count, \
         value_sum = excluded.value_sum, low_value = excluded.low_value, high_value = excluded.high_value, \
         at_min = excluded.at_min, at_max = excluded.at_max",
    )
    .bind(series_id)
    .bind(block_no)
    .bind(block_no * BLOCK_CHUNKS)
    .bind((block_no + 1) * BLOCK_CHUNKS)
    .execute(conn)
    .await?;
    Ok(())
}

/// The decoded points of the given chunks, read in runs of consecutive chunk numbers.
pub(crate) async fn chunk_points(
    conn: &mut AnyConnection,
    series_id: i64,
    chunk_nos: &[i64],
) -> Result<HashMap<i64, Vec<MetricPoint>>, ApiError> {
    let mut out = HashMap::with_capacity(chunk_nos.len());
    let mut i = 0;
    while i < chunk_nos.len() {
        let mut j = i;
        while j + 1 < chunk_nos.len() && chunk_nos[j + 1] == chunk_nos[j] + 1 {
            j += 1;
        }
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT chunk_no, points FROM metric_chunk_points WHERE series_id = $1 AND chunk_no >= $2 AND chunk_no <= $3",
        )
        .bind(series_id)
        .bind(chunk_nos[i])
        .bind(chunk_nos[j])
        .fetch_all(&mut *conn)
        .await?;
        out.extend(rows.into_iter().map(|(no, bytes)| (no, unpack(&bytes))));
        i = j + 1;
    }
    Ok(out)
}

/// Appends points to a series (created on first use), filling its last chunk before starting new ones.
async fn append(
    conn: &mut AnyConnection,
    version_id: i64,
    series: &SeriesKey,
    points: &[&NewMetricPoint],
    now: i64,
) -> Result<(SeriesRow, Vec<MetricPoint>), ApiError> {
    // Creates the series on first use; the (no-op) update on conflict locks its row until commit,
    // so concurrent batches of one series append in turn.
    let (id, before, chunk_count, mut last_step): (i64, i64, i64, i64) = sqlx::query_as(
        "INSERT INTO metric_series (version_id, key, source, environment_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (version_id, key, source, environment_id) DO UPDATE SET point_count = metric_series.point_count \
         RETURNING id, point_count, chunk_count, last_step",
    )
    .bind(version_id)
    .bind(&series.key)
    .bind(series.source.as_str())
    .bind(series.environment_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut started = before > 0;
    let new: Vec<MetricPoint> = points
        .iter()
        .map(|p| {
            let step = p.step.unwrap_or(if started { last_step + 1 } else { 0 });
            (started, last_step) = (true, step);
            MetricPoint { step, timestamp: p.timestamp.unwrap_or(now), value: p.value }
        })
        .collect();
    let mut rest = &new[..];
    let mut next_chunk = chunk_count;
    let filled = (before % CHUNK_POINTS as i64) as usize;
    if filled > 0 {
        let last = chunk_count - 1;
        let mut tail = chunk_points(conn, id, &[last]).await?.remove(&last).unwrap_or_default();
        let take = (CHUNK_POINTS - filled).min(rest.len());
        tail.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        store_chunk(conn, id, last, &tail).await?;
    }
    for piece in rest.chunks(CHUNK_POINTS) {
        store_chunk(conn, id, next_chunk, piece).await?;
        next_chunk += 1;
    }
    let first_block = (chunk_count - i64::from(filled > 0)).max(0) / BLOCK_CHUNKS;
    for block in first_block..=(next_chunk - 1) / BLOCK_CHUNKS {
        store_block(conn, id, block).await?;
    }
    let stats = ChunkStats::of(&new).ok_or_else(ApiError::internal)?;
    let (first, last) = (new[0], new[new.len() - 1]);
    sqlx::query(
        "UPDATE metric_series SET point_count = point_count + $2, chunk_count = $3, \
         first_step = CASE WHEN point_count = 0 THEN $4 ELSE first_step END, \
         first_at = CASE WHEN point_count = 0 THEN $5 ELSE first_at END, \
         first_value = CASE WHEN point_count = 0 THEN $6 ELSE first_value END, \
         last_step = $7, last_at = $8, last_value = $9, \
         min_value = CASE WHEN point_count = 0 OR $10 < min_value THEN $10 ELSE min_value END, \
         max_value = CASE WHEN point_count = 0 OR $11 > max_value THEN $11 ELSE max_value END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(new.len() as i64)
    .bind(next_chunk)
    .bind(first.step)
    .bind(first.timestamp)
    .bind(first.value)
    .bind(last.step)
    .bind(last.timestamp)
    .bind(last.value)
    .bind(stats.low.value)
    .bind(stats.high.value)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query_as::<_, SeriesRow>(&format!("SELECT {SERIES_COLUMNS} FROM {SERIES_FROM} WHERE s.id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok((row, new))
}

/// One series read over `[from, to]` on `axis`: every point when they fit in `max_points`,
/// otherwise each bucket's minimum and maximum, from chunk stats wherever a bucket spans whole chunks.
async fn read_series(
    conn: &mut AnyConnection,
    series_id: i64,
    axis: MetricAxis,
    (from, to): (i64, i64),
    max_points: usize,
) -> Result<(i64, bool, Vec<MetricPoint>), ApiError> {
    let (min_col, max_col) = match axis {
        MetricAxis::Step => ("step_min", "step_max"),
        MetricAxis::Time => ("at_min", "at_max"),
    };
    let chunks: Vec<ChunkRow> = sqlx::query_as(&format!(
        "SELECT {CHUNK_COLUMNS} FROM metric_chunks \
         WHERE series_id = $1 AND {max_col} >= $2 AND {min_col} <= $3 ORDER BY chunk_no"
    ))
    .bind(series_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let in_range = |p: &MetricPoint| (from..=to).contains(&position(p, axis));
    let whole = |c: &ChunkRow| {
        let (lo, hi) = c.stats().range(axis);
        from <= lo && hi <= to
    };
    let partial: Vec<i64> = chunks.iter().filter(|c| !whole(c)).map(|c| c.chunk_no).collect();
    let mut decoded = chunk_points(conn, series_id, &partial).await?;
    for points in decoded.values_mut() {
        points.retain(in_range);
    }
    let total: i64 = chunks.iter().filter(|c| whole(c)).map(|c| c.point_count).sum::<i64>()
        + decoded.values().map(|p| p.len() as i64).sum::<i64>();
    let size = bucket_size(total, max_points);
    let downsampled = total > max_points as i64;
    let needed: Vec<i64> =
        chunks.iter().filter(|c| whole(c) && (!downsampled || c.point_count > size)).map(|c| c.chunk_no).collect();
    decoded.extend(chunk_points(conn, series_id, &needed).await?);
    let units = chunks.iter().flat_map(|c| match decoded.remove(&c.chunk_no) {
        Some(points) => points.into_iter().map(Unit::Point).collect::<Vec<_>>(),
        None => vec![Unit::Chunk(c.stats())],
    });
    if !downsampled {
        let points = units.filter_map(|u| if let Unit::Point(p) = u { Some(p) } else { None }).collect();
        return Ok((total, false, points));
    }
    Ok((total, true, bucket_points(&buckets(units, size), axis)))
}

impl Store {
    /// The series of one key of a version, ordered by source and environment.
    async fn key_series(
        &self,
        conn: &mut AnyConnection,
        model: &str,
        number: i64,
        key: &str,
        query: &SeriesQuery,
    ) -> Result<Vec<SeriesRow>, ApiError> {
        validate::metric_key("key", key)?;
        query.validate()?;
        // One query on the common path; the model and version are looked up apart only to say
        // precisely what is missing.
        let rows: Vec<SeriesRow> = sqlx::query_as(&format!(
            "SELECT {SERIES_COLUMNS} FROM {SERIES_FROM} JOIN versions v ON v.id = s.version_id \
             JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.number = $2 AND s.key = $3 \
             ORDER BY s.source, e.position, e.id"
        ))
        .bind(model)
        .bind(number)
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            version_ids(conn, model, number).await?;
            return Err(ApiError::not_found(format!("version {number} of '{model}' has no metric '{key}'")));
        }
        Ok(rows
            .into_iter()
            .filter(|r| query.source.is_none_or(|s| s == r.source()))
            .filter(|r| query.environment.is_none() || query.environment == r.environment)
            .collect())
    }

    /// Every stored point of one key of a version, series after series, as CSV lines
    /// (`source,environment,step,timestamp,value`), read a few chunks at a time.
    pub async fn metric_csv(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        key: &str,
        query: SeriesQuery,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, ApiError>> + use<>, ApiError> {
        caller.require(Permission::Read)?;
        let series = self.key_series(&mut *self.conn().await?, model, number, key, &query).await?;
        let jobs: Vec<(i64, String, i64)> = series
            .iter()
            .flat_map(|s| {
                let label = format!("{},{}", s.source, s.environment.as_deref().unwrap_or(""));
                (0..s.chunk_count).step_by(64).map(move |start| (s.id, label.clone(), start))
            })
            .collect();
        let store = self.clone();
        let head = futures::stream::iter([Ok(b"source,environment,step,timestamp,value\n".to_vec())]);
        let body = futures::stream::iter(jobs).then(move |(id, label, start)| {
            let store = store.clone();
            async move {
                let nos: Vec<i64> = (start..start + 64).collect();
                let mut chunks = chunk_points(&mut *store.conn().await?, id, &nos).await?;
                let mut out = Vec::new();
                for no in nos {
                    for p in chunks.remove(&no).unwrap_or_default() {
                        out.extend(format!("{label},{},{},{}\n", p.step, p.timestamp, p.value).into_bytes());
                    }
                }
                Ok(out)
            }
        });
        Ok(head.chain(body))
    }
}

/// What a write stored in a version's metric series: told to subscribers once it commits.
#[derive(Debug, Default)]
pub(crate) struct StoredPoints {
    version: i64,
    keys: Vec<String>,
    points: usize,
    series: Vec<SeriesSummary>,
    changes: Vec<HealthChange>,
}

/// Appends points to a version's series inside the caller's transaction (each series created on
/// first use) and re-evaluates the guardrails they touch, queuing health changes as events.
pub(crate) async fn store_points(
    conn: &mut AnyConnection,
    log: &AuditLog,
    model: &str,
    (model_id, version_id, number): (i64, i64, i64),
    points: &[NewMetricPoint],
    now: i64,
) -> Result<StoredPoints, ApiError> {
    let mut environments: HashMap<String, i64> = HashMap::new();
    let mut order: Vec<SeriesKey> = Vec::new();
    let mut groups: HashMap<SeriesKey, Vec<&NewMetricPoint>> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        let environment_id = match &p.environment {
            None => 0,
            Some(name) => match environments.get(name) {
                Some(id) => *id,
                None => {
                    let id = sqlx::query_scalar::<_, i64>("SELECT id FROM environments WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await?
                        .ok_or_else(|| {
                            ApiError::invalid(
                                &format!("points[{i}].environment"),
                                format!("no environment named '{name}'"),
                            )
                        })?;
                    environments.insert(name.clone(), id);
                    id
                }
            },
        };
        let key = SeriesKey { key: p.key.clone(), source: p.source, environment_id };
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(p);
    }
    let mut series = Vec::with_capacity(order.len());
    let mut appended = Appended::with_capacity(order.len());
    for key in &order {
        let (row, added) = append(conn, version_id, key, &groups[key], now).await?;
        series.push(row.summary());
        appended.insert(key.clone(), (row.id, added));
    }
    let changes = guardrails::reevaluate(conn, log, (model, model_id), (version_id, number), &appended, now).await?;
    guardrails::announce_health(conn, model, &changes, now).await?;
    let mut keys: Vec<String> = order.into_iter().map(|k| k.key).collect();
    keys.dedup();
    Ok(StoredPoints { version: number, keys, points: points.len(), series, changes })
}

impl Store {
    /// Tells subscribers what a committed write stored, and files rollbacks for failing health.
    pub(crate) async fn metrics_stored(&self, model: &str, stored: StoredPoints) {
        if stored.points == 0 {
            return;
        }
        let event = ServerEvent::Metrics {
            model: model.to_string(),
            version: stored.version,
            keys: stored.keys,
            points: stored.points,
        };
        crate::events::announce_transient(&self.db, &self.events, event).await;
        self.health_changed(model, stored.changes).await;
    }
}

#[async_trait]
impl Metrics for Store {
    async fn ingest_metrics(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        batch: MetricBatch,
    ) -> Result<IngestReport, ApiError> {
        caller.require(Permission::PushMetrics)?;
        batch.validate()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_data_write().await?;
        let (model_id, version_id) = version_ids(&mut tx, model, number).await?;
        let stored =
            store_points(&mut tx, &self.audit, model, (model_id, version_id, number), &batch.points, now).await?;
        tx.commit().await?;
        let health = stored_health(&mut *self.conn().await?, &[(version_id, number)]).await?;
        let series = stored.series.clone();
        self.metrics_stored(model, stored).await;
        Ok(IngestReport { accepted: batch.points.len(), series, health })
    }

    async fn list_metrics(&self, caller: &Caller, model: &str, number: i64) -> Result<Vec<SeriesSummary>, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let (_, version_id) = version_ids(&mut conn, model, number).await?;
        let rows: Vec<SeriesRow> = sqlx::query_as(&format!(
            "SELECT {SERIES_COLUMNS} FROM {SERIES_FROM} WHERE s.version_id = $1 ORDER BY s.key, s.source, e.position, e.id"
        ))
        .bind(version_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.iter().map(SeriesRow::summary).collect())
    }

    async fn metric_series(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        key: &str,
        query: SeriesQuery,
    ) -> Result<MetricSeries, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let rows = self.key_series(&mut conn, model, number, key, &query).await?;
        let axis = query.axis.unwrap_or_default();
        let range = (query.from.unwrap_or(i64::MIN), query.to.unwrap_or(i64::MAX));
        let max_points = query.max_points.unwrap_or(DEFAULT_SERIES_POINTS) as usize;
        let mut series = Vec::with_capacity(rows.len());
        for row in &rows {
            let (total, downsampled, points) = read_series(&mut conn, row.id, axis, range, max_points).await?;
            series.push(Series {
                source: row.source(),
                environment: row.environment.clone(),
                total,
                downsampled,
                points,
            });
        }
        Ok(MetricSeries { model: model.to_string(), version: number, key: key.to_string(), axis, series })
    }

    async fn model_metrics(&self, caller: &Caller, model: &str, key: Option<String>) -> Result<ModelMetrics, ApiError> {
        caller.require(Permission::Read)?;
        if let Some(k) = &key {
            validate::metric_key("key", k)?;
        }
        let mut conn = self.conn().await?;
        let id = model_id(&mut conn, model).await?;
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.key, COUNT(DISTINCT s.version_id) FROM metric_series s JOIN versions v ON v.id = s.version_id \
             WHERE v.model_id = $1 GROUP BY s.key ORDER BY s.key",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let guarded: Vec<String> = guardrails::load(&mut conn, id, None).await?.into_iter().map(|g| g.metric).collect();
        let widest = leading_key(&counts, &guarded);
        let keys: Vec<String> = counts.into_iter().map(|(k, _)| k).collect();
        let Some(key) = key.or(widest) else {
            return Ok(ModelMetrics::default());
        };
        let rows: Vec<(i64, SeriesRow)> = sqlx::query_as::<_, SeriesRow>(&format!(
            "SELECT {SERIES_COLUMNS}, v.number AS version_number FROM {SERIES_FROM} JOIN versions v ON v.id = s.version_id \
             WHERE v.model_id = $1 AND s.key = $2 ORDER BY v.number, s.source, e.position, e.id"
        ))
        .bind(id)
        .bind(&key)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.version_number.unwrap_or_default(), r))
        .collect();
        let mut versions: Vec<VersionMetric> = Vec::new();
        for (number, row) in rows {
            if versions.last().is_some_and(|v| v.version == number) {
                continue;
            }
            let (_, _, trend) = read_series(&mut conn, row.id, MetricAxis::Step, (i64::MIN, i64::MAX), 24).await?;
            versions.push(VersionMetric {
                version: number,
                source: row.source(),
                environment: row.environment.clone(),
                count: row.point_count,
                last: row.last_value,
                min: row.min_value,
                max: row.max_value,
                trend: trend.iter().map(|p| p.value).collect(),
            });
        }
        Ok(ModelMetrics { keys, key: Some(key), versions })
    }

    async fn list_guardrails(&self, caller: &Caller, model: &str) -> Result<Vec<Guardrail>, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let id = model_id(&mut conn, model).await?;
        guardrails::load(&mut conn, id, None).await
    }

    async fn create_guardrail(
        &self,
        caller: &Caller,
        model: &str,
        input: GuardrailInput,
    ) -> Result<Guardrail, ApiError> {
        caller.require(Permission::ManageGuardrails)?;
        guardrails::save(self, caller, model, None, input).await
    }

    async fn update_guardrail(
        &self,
        caller: &Caller,
        model: &str,
        id: i64,
        input: GuardrailInput,
    ) -> Result<Guardrail, ApiError> {
        caller.require(Permission::ManageGuardrails)?;
        guardrails::save(self, caller, model, Some(id), input).await
    }

    async fn delete_guardrail(&self, caller: &Caller, model: &str, id: i64) -> Result<Guardrail, ApiError> {
        caller.require(Permission::ManageGuardrails)?;
        guardrails::delete(self, caller, model, id).await
    }

    async fn version_health(&self, caller: &Caller, model: &str, number: i64) -> Result<Vec<HealthReport>, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let (model_id, version_id) = version_ids(&mut conn, model, number).await?;
        guardrails::reports(&mut conn, model_id, version_id, self.clock.now_ms()).await
    }

    async fn replay_guardrail(&self, caller: &Caller, model: &str, number: i64, id: i64) -> Result<Replay, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let (model_id, version_id) = version_ids(&mut conn, model, number).await?;
        let (environment_id, rule) = guardrails::find(&mut conn, model_id, model, id).await?;
        let subject = baseline::Subject { model_id, version_id, number, environment_id };
        replay::replay(&mut conn, subject, rule).await
    }
}

impl Store {
    /// After a commit that changed versions' health (its events stored with it): relays the
    /// events, and files a rollback request for a live version that turned failing where the
    /// environment's policy asks for one.
    pub(crate) async fn health_changed(&self, model: &str, changes: Vec<HealthChange>) {
        if changes.is_empty() {
            return;
        }
        self.events.stored();
        for change in changes.into_iter().filter(|c| c.health == Health::Failing) {
            self.file_automatic_rollback(model, &change.environment, change.version).await;
        }
    }
}
