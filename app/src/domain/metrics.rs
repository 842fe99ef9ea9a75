//! Metric points per version (evaluation and live monitoring), their downsampled series, and the
//! guardrails that turn them into each version's health per environment.

use serde::{Deserialize, Deserializer, Serialize};

/// Largest batch `POST …/metrics` accepts.
pub const MAX_METRIC_BATCH: usize = 10_000;
/// Largest `max_points` a series request may ask for.
pub const MAX_SERIES_POINTS: u32 = 10_000;
/// Points per series when the client names no `max_points`.
pub const DEFAULT_SERIES_POINTS: u32 = 1_000;

/// Where a point was measured: offline evaluation, or live monitoring in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    #[default]
    Eval,
    Live,
}

impl MetricSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricSource::Eval => "eval",
            MetricSource::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MetricSource::Eval, MetricSource::Live].into_iter().find(|v| v.as_str() == s)
    }
}

/// One point as a client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMetricPoint {
    /// 1 to 250 characters: letters, digits, `_ - . / ` and spaces (as MLflow allows).
    pub key: String,
    /// A finite number; `"NaN"`/`"Infinity"` strings are read so they can be refused by index.
    #[serde(deserialize_with = "number_or_named")]
    #[cfg_attr(feature = "ssr", schema(value_type = f64))]
    pub value: f64,
    /// Training step or other ordinal; defaults to the series' last step + 1.
    #[serde(default)]
    pub step: Option<i64>,
    /// Milliseconds since the Unix epoch (as MLflow); defaults to the time the server receives it.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub source: MetricSource,
    /// Required for live points: the environment the point was observed in.
    #[serde(default)]
    pub environment: Option<String>,
}

/// Accepts a JSON number, or a string naming one (so `"NaN"` reaches validation and is refused by index).
fn number_or_named<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct NumberOrName;
    impl serde::de::Visitor<'_> for NumberOrName {
        type Value = f64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number")
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim().parse().map_err(|_| E::custom(format!("{v:?} is not a number")))
        }
    }
    d.deserialize_any(NumberOrName)
}

/// Body of `POST …/versions/{n}/metrics`: accepted or refused as a whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricBatch {
    pub points: Vec<NewMetricPoint>,
}

/// What an accepted batch changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct IngestReport {
    pub accepted: usize,
    /// The series the batch appended to.
    pub series: Vec<SeriesSummary>,
    /// This version's health in each environment after the batch.
    pub health: Vec<EnvironmentHealth>,
}

/// One stored point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricPoint {
    pub step: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub value: f64,
}

/// A series: one key of one version from one source (and, for live points, one environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesSummary {
    pub key: String,
    pub source: MetricSource,
    pub environment: Option<String>,
    pub count: i64,
    pub first: MetricPoint,
    pub last: MetricPoint,
    pub min: f64,
    pub max: f64,
}

/// One version's series of a metric key, as the model page compares versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionMetric {
    pub version: i64,
    /// The evaluation series when there is one, else the first live one.
    pub source: MetricSource,
    pub environment: Option<String>,
    pub count: i64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    /// The series reduced to a few points, for a sparkline.
    pub trend: Vec<f64>,
}

/// A model's key metric (the one its page compares first) across its newest versions, oldest
/// first: the last value each recorded, as the models list draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct KeyMetricTrend {
    pub key: String,
    pub versions: Vec<VersionValue>,
}

/// One version's last value of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionValue {
    pub version: i64,
    pub value: f64,
}

/// Response of `GET /api/v1/models/{model}/metrics`: one metric key across the model's versions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelMetrics {
    /// Every key any version has points for.
    pub keys: Vec<String>,
    /// The key shown: the one asked for, else the one most versions have (a guarded one, then the
    /// first by name, among equals).
    pub key: Option<String>,
    /// Versions with points for `key`, by number.
    pub versions: Vec<VersionMetric>,
}

/// Query of `GET /api/v1/models/{model}/metrics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct ModelMetricsQuery {
    pub key: Option<String>,
}

/// The axis a range and a chart are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetricAxis {
    #[default]
    Step,
    Time,
}

/// Query of `GET …/metrics/{key}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct SeriesQuery {
    /// At most this many points per series, 2 to 10,000 (default 1,000).
    pub max_points: Option<u32>,
    /// Inclusive range start on `axis` (a step, or milliseconds since the epoch).
    pub from: Option<i64>,
    /// Inclusive range end on `axis`.
    pub to: Option<i64>,
    pub axis: Option<MetricAxis>,
    /// Only this source.
    pub source: Option<MetricSource>,
    /// Only live points from this environment.
    pub environment: Option<String>,
}

/// One series of a key, downsampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Series {
    pub source: MetricSource,
    pub environment: Option<String>,
    /// Points stored in the requested range.
    pub total: i64,
    /// Whether `points` is a reduction (the minimum and maximum of each bucket) of the stored points.
    pub downsampled: bool,
    pub points: Vec<MetricPoint>,
}

/// Response of `GET …/metrics/{key}`: every series of the key that matches the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricSeries {
    pub model: String,
    pub version: i64,
    pub key: String,
    pub axis: MetricAxis,
    pub series: Vec<Series>,
}

/// A version's health in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    Warning,
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Failing => "failing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Health::Unknown, Health::Healthy, Health::Warning, Health::Failing].into_iter().find(|h| h.as_str() == s)
    }
}

/// Health of a version in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EnvironmentHealth {
    pub environment: String,
    pub version: i64,
    pub health: Health,
    /// When the version took this health.
    pub since: String,
}

/// How a guardrail reduces the points in its window to one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Last,
    Mean,
    Min,
    Max,
    P95,
    P99,
}

impl Aggregation {
    pub const ALL: [Aggregation; 6] =
        [Aggregation::Last, Aggregation::Mean, Aggregation::Min, Aggregation::Max, Aggregation::P95, Aggregation::P99];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Last => "last",
            Aggregation::Mean => "mean",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::P95 => "p95",
            Aggregation::P99 => "p99",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The aggregate of `values` (in arrival order), or `None` when there are none.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let percentile = |p: f64| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            let rank = (p * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Some(match self {
            Aggregation::Last => values[values.len() - 1],
            Aggregation::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Aggregation::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregation::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregation::P95 => percentile(0.95),
            Aggregation::P99 => percentile(0.99),
        })
    }
}

/// How a guardrail's aggregate is compared with its threshold; the rule holds when the comparison is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Comparator {
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
}

impl Comparator {
    pub const ALL: [Comparator; 4] = [Comparator::Below, Comparator::AtMost, Comparator::Above, Comparator::AtLeast];

    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Below => "<",
            Comparator::AtMost => "<=",
            Comparator::Above => ">",
            Comparator::AtLeast => ">=",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Below => value < threshold,
            Comparator::AtMost => value <= threshold,
            Comparator::Above => value > threshold,
            Comparator::AtLeast => value >= threshold,
        }
    }
}

/// What a broken rule makes of the version's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    #[default]
    Failing,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Failing => "failing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Severity::Warning, Severity::Failing].into_iter().find(|v| v.as_str() == s)
    }

    /// The health a version has when a rule of this severity is broken.
    pub fn health(self) -> Health {
        match self {
            Severity::Warning => Health::Warning,
            Severity::Failing => Health::Failing,
        }
    }
}

/// The points a guardrail looks at: the last N points, or those of the last T minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Points(i64),
    Minutes(i64),
}

/// Body of `POST …/guardrails` and `PUT …/guardrails/{id}`: a threshold rule (`aggregation`,
/// `comparator`, `threshold`) or a comparison rule (`comparison`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GuardrailInput {
    pub environment: String,
    pub metric: String,
    /// `live` (points observed in the environment, the default) or `eval`.
    #[serde(default = "live_source")]
    pub source: MetricSource,
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
    pub window: Window,
    #[serde(default)]
    pub comparator: Option<Comparator>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The version's points against its baseline's, instead of a threshold.
    #[serde(default)]
    pub comparison: Option<Comparison>,
    #[serde(default)]
    pub severity: Severity,
    /// Whether the rule counts toward health (admins only); a new rule is observed (evaluated and
    /// recorded, not enforced) unless this says otherwise, an edit keeps the rule's mode.
    #[serde(default)]
    pub enforced: Option<bool>,
}

fn live_source() -> MetricSource {
    MetricSource::Live
}

/// A rule on a model's metric in one environment: a threshold on an aggregate of its window, e.g.
/// `p99(latency_ms, last 100) <= 250`, or a comparison of the window with the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Guardrail {
    pub id: i64,
    pub model: String,
    pub environment: String,
    pub metric: String,
    pub source: MetricSource,
    pub window: Window,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Comparator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    pub severity: Severity,
    /// False while the rule is observed: evaluated and recorded, but not counted toward health.
    pub enforced: bool,
    pub updated_at: String,
    pub updated_by: String,
}

impl Guardrail {
    /// The input that saves this rule as it is (keeping its mode).
    pub fn input(&self) -> GuardrailInput {
        GuardrailInput {
            environment: self.environment.clone(),
            metric: self.metric.clone(),
            source: self.source,
            aggregation: self.aggregation,
            window: self.window,
            comparator: self.comparator,
            threshold: self.threshold,
            comparison: self.comparison,
            severity: self.severity,
            enforced: None,
        }
    }

    /// The rule as people write it: `p99(latency_ms, last 100) <= 250`, or
    /// `latency_ms (last 100) vs baseline: higher is worse beyond +10 %, sequential at 95 %`.
    pub fn describe(&self) -> String {
        let window = match self.window {
            Window::Points(n) => format!("last {n}"),
            Window::Minutes(m) => format!("last {m} min"),
        };
        let source = if self.source == MetricSource::Eval { " (eval)" } else { "" };
        if let Some(c) = &self.comparison {
            return format!("{}{source} ({window}) vs baseline: {}", self.metric, c.describe());
        }
        format!(
            "{}({}{source}, {window}) {} {}",
            self.aggregation.map_or("", Aggregation::as_str),
            self.metric,
            self.comparator.map_or("", Comparator::as_str),
            self.threshold.unwrap_or_default()
        )
    }
}

/// What a comparison rule asks of a version against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub direction: Direction,
    pub tolerance: Tolerance,
    pub test: ComparisonTest,
    /// Points each side needs before any verdict.
    pub min_points: usize,
    /// The interval's confidence, e.g. 0.95.
    pub confidence: f64,
}

impl Comparison {
    /// `higher is worse beyond +10 %, sequential at 95 %`.
    pub fn describe(&self) -> String {
        let sign = match self.direction {
            Direction::HigherIsWorse => "+",
            Direction::LowerIsWorse => "−",
        };
        let tolerance = match self.tolerance {
            Tolerance::Relative(r) => format!("{sign}{} %", round(r * 100.0)),
            Tolerance::Absolute(a) => format!("{sign}{}", round(a)),
        };
        let direction = match self.direction {
            Direction::HigherIsWorse => "higher is worse",
            Direction::LowerIsWorse => "lower is worse",
        };
        let test = match self.test {
            ComparisonTest::MannWhitney => "Mann–Whitney",
            ComparisonTest::Sequential => "sequential",
        };
        format!("{direction} beyond {tolerance}, {test} at {} %", round(self.confidence * 100.0))
    }
}

/// A number for a sentence: at most four significant decimals, no trailing zeros.
fn round(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latency, error rate, cost.
    HigherIsWorse,
    /// Accuracy, conversion.
    LowerIsWorse,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsWorse => "higher_is_worse",
            Direction::LowerIsWorse => "lower_is_worse",
        }
    }
}

/// How much worse than its baseline a version may be before it counts: `relative` (0.1: 10 %,
/// compared on the log scale, so for positive values only) or `absolute` (in the metric's units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    Relative(f64),
    Absolute(f64),
}

/// The test a comparison rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComparisonTest {
    /// Mann–Whitney U on a fixed window, with the Hodges–Lehmann shift and its confidence
    /// interval (as Kayenta judges a canary). Valid once per window, not when re-checked as points
    /// arrive.
    MannWhitney,
    /// A mixture sequential probability ratio test's confidence sequence on the difference of
    /// means: valid however often it is checked.
    Sequential,
}

impl ComparisonTest {
    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonTest::MannWhitney => "mann_whitney",
            ComparisonTest::Sequential => "sequential",
        }
    }
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Confidently no worse than the tolerance allows.
    Pass,
    /// Confidently worse than the tolerance allows.
    Fail,
    /// The data cannot tell yet: the interval straddles the tolerance.
    Inconclusive,
    /// Fewer points than the rule's minimum on a side (or values the test cannot take).
    NoData,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Pass, Outcome::Fail, Outcome::Inconclusive, Outcome::NoData];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::NoData => "no_data",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A version's metric compared with its baseline's: the outcome and what it rests on. The shift
/// is the version's minus the baseline's — relative (0.12: 12 % higher) for a relative tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ComparisonEvidence {
    pub outcome: Outcome,
    pub test: ComparisonTest,
    pub baseline_points: i64,
    pub candidate_points: i64,
    /// The shift's estimate (Hodges–Lehmann, or the difference of means) and its interval at the
    /// rule's confidence; absent without data.
    pub shift: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Whether the shift is relative (a ratio minus one) rather than in the metric's units.
    pub relative: bool,
    /// The test's statistic: U, or the log likelihood ratio against a shift at the tolerance.
    pub statistic: Option<f64>,
    /// The p-value for "no shift" (always valid, for the sequential test).
    pub p_value: Option<f64>,
    /// Why there is no verdict, when there is none.
    pub note: Option<String>,
}

/// The version a comparison rule compares with, and how: over the same minutes while both serve,
/// or (weaker: time itself may differ) its last window before it was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Baseline {
    pub version: i64,
    pub concurrent: bool,
}

/// One guardrail evaluated against one version's points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GuardrailCheck {
    pub guardrail: Guardrail,
    /// Points in the window.
    pub points: i64,
    /// The aggregate of a threshold rule; `None` when the window holds no point.
    pub observed: Option<f64>,
    /// Whether the rule holds; `None` when it could not be evaluated (or, for a comparison, when
    /// it is inconclusive).
    pub holds: Option<bool>,
    pub outcome: Outcome,
    /// A comparison rule's evidence and baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<ComparisonEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

impl GuardrailCheck {
    /// A threshold rule's check from its window's point count and aggregate.
    pub fn threshold(guardrail: Guardrail, points: i64, observed: Option<f64>) -> Self {
        let holds = observed.zip(guardrail.comparator.zip(guardrail.threshold)).map(|(v, (c, t))| c.holds(v, t));
        let outcome = match holds {
            Some(true) => Outcome::Pass,
            Some(false) => Outcome::Fail,
            None => Outcome::NoData,
        };
        Self { guardrail, points, observed, holds, outcome, evidence: None, baseline: None }
    }

    /// A comparison rule's check from its evidence.
    pub fn comparison(guardrail: Guardrail, evidence: ComparisonEvidence, baseline: Option<Baseline>) -> Self {
        let holds = match evidence.outcome {
            Outcome::Pass => Some(true),
            Outcome::Fail => Some(false),
            Outcome::Inconclusive | Outcome::NoData => None,
        };
        Self {
            points: evidence.candidate_points,
            observed: evidence.shift,
            holds,
            outcome: evidence.outcome,
            guardrail,
            evidence: Some(evidence),
            baseline,
        }
    }

    /// Whether this check counts against the version: an enforced rule that failed.
    pub fn breaks(&self) -> bool {
        self.guardrail.enforced && self.outcome == Outcome::Fail
    }

    /// The verdict in words: `observed 438.2`, or `+23.0 % [+15.1 %, +31.2 %] vs v3 over the same
    /// minutes (2000 points vs 2000; log LR = 41.2, p < 0.0001)`.
    pub fn evidence_text(&self) -> String {
        let Some(e) = &self.evidence else {
            return self.observed.map_or_else(|| "no points".into(), |v| format!("observed {}", round(v)));
        };
        let shift = |x: f64| {
            if e.relative { format!("{:+.1} %", x * 100.0) } else { format!("{:+}", round(x)) }
        };
        let against = match self.baseline {
            Some(Baseline { version, concurrent: true }) => format!("v{version} over the same minutes"),
            Some(Baseline { version, concurrent: false }) => format!("v{version}'s last window before the switch"),
            None => "no baseline".into(),
        };
        let counts = format!("{} points vs {}", e.candidate_points, e.baseline_points);
        match (e.shift, e.low, e.high) {
            (Some(s), Some(l), Some(h)) => {
                let statistic = match (e.test, e.statistic) {
                    (ComparisonTest::MannWhitney, Some(u)) => format!("; U = {u:.0}"),
                    (ComparisonTest::Sequential, Some(llr)) => format!("; log LR = {llr:.1}"),
                    _ => String::new(),
                };
                let p = match e.p_value {
                    Some(p) if p < 1e-4 => ", p < 0.0001".to_string(),
                    Some(p) => format!(", p = {}", round(p)),
                    None => String::new(),
                };
                format!("{} [{}, {}] vs {against} ({counts}{statistic}{p})", shift(s), shift(l), shift(h))
            }
            _ => format!("{} vs {against} ({counts})", e.note.as_deref().unwrap_or("no verdict")),
        }
    }
}

/// A version's health in one environment, with the evaluation of every rule behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HealthReport {
    pub environment: String,
    pub health: Health,
    pub checks: Vec<GuardrailCheck>,
}

impl HealthReport {
    /// The health a set of checks yields from its enforced rules (observed ones never count): any
    /// failed failing rule fails, then any failed warning rule warns, then any rule without a
    /// verdict (no data, inconclusive) leaves it unknown; no enforced rule at all is unknown too.
    pub fn verdict(checks: &[GuardrailCheck]) -> Health {
        let enforced: Vec<&GuardrailCheck> = checks.iter().filter(|c| c.guardrail.enforced).collect();
        let failed = |s: Severity| enforced.iter().any(|c| c.outcome == Outcome::Fail && c.guardrail.severity == s);
        if failed(Severity::Failing) {
            Health::Failing
        } else if failed(Severity::Warning) {
            Health::Warning
        } else if enforced.is_empty() || enforced.iter().any(|c| c.outcome != Outcome::Pass) {
            Health::Unknown
        } else {
            Health::Healthy
        }
    }
}

/// A rule's verdict over a stretch of a version's history, as replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReplaySpan {
    pub from: String,
    pub to: String,
    pub outcome: Outcome,
    /// The aggregate (threshold rule) or the shift (comparison) when the span began.
    pub value: Option<f64>,
}

/// A rule run over a version's stored history, minute by minute: its verdict timeline and when it
/// would first have failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Replay {
    pub guardrail: Guardrail,
    pub version: i64,
    /// Points of the version's series the replay read.
    pub points: i64,
    /// Evaluations made (one a minute, at most [`Replay::MAX_STEPS`] evenly spread).
    pub evaluations: i64,
    pub spans: Vec<ReplaySpan>,
    pub first_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

impl Replay {
    pub const MAX_STEPS: usize = 240;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregations_reduce_a_window() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Aggregation::Last.apply(&v), Some(100.0));
        assert_eq!(Aggregation::Mean.apply(&v), Some(50.5));
        assert_eq!(Aggregation::Min.apply(&v), Some(1.0));
        assert_eq!(Aggregation::Max.apply(&v), Some(100.0));
        assert_eq!(Aggregation::P95.apply(&v), Some(95.0));
        assert_eq!(Aggregation::P99.apply(&v), Some(99.0));
        assert_eq!(Aggregation::P99.apply(&[3.0]), Some(3.0));
        assert_eq!(Aggregation::Mean.apply(&[]), None);
    }

    #[test]
    fn comparators_and_verdicts() {
        assert!(Comparator::AtMost.holds(250.0, 250.0));
        assert!(!Comparator::Below.holds(250.0, 250.0));
        assert!(Comparator::AtLeast.holds(0.93, 0.92));
        assert!(!Comparator::Above.holds(0.91, 0.92));
        let rule = |severity| Guardrail {
            id: 1,
            model: "m".into(),
            environment: "production".into(),
            metric: "accuracy".into(),
            source: MetricSource::Live,
            aggregation: Some(Aggregation::Mean),
            window: Window::Points(5),
            comparator: Some(Comparator::AtLeast),
            threshold: Some(0.92),
            comparison: None,
            severity,
            enforced: true,
            updated_at: String::new(),
            updated_by: String::new(),
        };
        let check = |severity, holds: Option<bool>| {
            GuardrailCheck::threshold(rule(severity), 5, holds.map(|h| if h { 0.95 } else { 0.5 }))
        };
        assert_eq!(HealthReport::verdict(&[]), Health::Unknown);
        assert_eq!(HealthReport::verdict(&[check(Severity::Failing, Some(true))]), Health::Healthy);
        assert_eq!(HealthReport::verdict(&[check(Severity::Failing, None)]), Health::Unknown);
        assert_eq!(
            HealthReport::verdict(&[check(Severity::Warning, Some(false)), check(Severity::Failing, None)]),
            Health::Warning
        );
        assert_eq!(
            HealthReport::verdict(&[check(Severity::Warning, Some(false)), check(Severity::Failing, Some(false))]),
            Health::Failing
        );
        let observed = GuardrailCheck {
            guardrail: Guardrail { enforced: false, ..rule(Severity::Failing) },
            ..check(Severity::Failing, Some(false))
        };
        assert_eq!(
            HealthReport::verdict(std::slice::from_ref(&observed)),
            Health::Unknown,
            "an observed rule never counts"
        );
        assert_eq!(HealthReport::verdict(&[observed, check(Severity::Failing, Some(true))]), Health::Healthy);
        assert_eq!(rule(Severity::Failing).describe(), "mean(accuracy, last 5) >= 0.92");
        let comparison = Comparison {
            direction: Direction::HigherIsWorse,
            tolerance: Tolerance::Relative(0.1),
            test: ComparisonTest::Sequential,
            min_points: 30,
            confidence: 0.95,
        };
        let compared = Guardrail {
            comparison: Some(comparison),
            aggregation: None,
            comparator: None,
            threshold: None,
            ..rule(Severity::Failing)
        };
        assert_eq!(
            compared.describe(),
            "accuracy (last 5) vs baseline: higher is worse beyond +10 %, sequential at 95 %"
        );
    }

    #[test]
    fn values_may_name_a_number_so_bad_ones_are_refused_by_index() {
        let p: NewMetricPoint = serde_json::from_str(r#"{"key":"a","value":"NaN"}"#).unwrap();
        assert!(p.value.is_nan());
        let p: NewMetricPoint = serde_json::from_str(r#"{"key":"a","value":0.5,"source":"live"}"#).unwrap();
        assert_eq!((p.value, p.source), (0.5, MetricSource::Live));
        assert!(serde_json::from_str::<NewMetricPoint>(r#"{"key":"a","value":"x"}"#).is_err());
    }
}
