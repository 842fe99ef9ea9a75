//! Replay: a rule run over a version's stored history, one evaluation a minute, for its verdict
//! timeline and the moment it would first have failed — the evidence an admin reads before
//! enforcing it.

use app::domain::*;
use app::error::ApiError;
use sqlx::AnyConnection;

use super::baseline::{self, Subject, judge, series_points, window_of};
use super::compare::Test;
use crate::clock::rfc3339;

/// When the replay evaluates: every minute from the first point to the last, or — over a longer
/// history — [`Replay::MAX_STEPS`] times evenly apart; always at the last point.
fn steps(points: &[MetricPoint]) -> Vec<i64> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return Vec::new() };
    let span = last.timestamp - first.timestamp;
    let every = (span / Replay::MAX_STEPS as i64).max(60_000);
    let mut at: Vec<i64> = (1..).map(|k| first.timestamp + k * every).take_while(|t| *t < last.timestamp).collect();
    at.push(last.timestamp);
    at
}

/// `rule` run over the stored history of `subject`.
pub(crate) async fn replay(conn: &mut AnyConnection, subject: Subject, rule: Guardrail) -> Result<Replay, ApiError> {
    let target = (subject.version_id, subject.environment_id);
    let points = series_points(conn, target, (&rule.metric, rule.source), None, i64::MAX).await?;
    let steps = steps(&points);
    let mut verdicts: Vec<(i64, Outcome, Option<f64>)> = Vec::with_capacity(steps.len());
    let mut baseline_used = None;
    match rule.comparison {
        None => {
            let mut values = Vec::new();
            for at in &steps {
                values.clear();
                values.extend(window_of(&points, rule.window, *at).iter().map(|p| p.value));
                let check = GuardrailCheck::threshold(
                    rule.clone(),
                    values.len() as i64,
                    rule.aggregation.and_then(|a| a.apply(&values)),
                );
                verdicts.push((*at, check.outcome, check.observed));
            }
        }
        Some(comparison) => {
            let test = Test(comparison);
            match baseline::baseline(conn, subject).await? {
                None => {
                    let evidence = baseline::no_baseline(test, &points, subject, &rule);
                    verdicts.extend(steps.iter().map(|at| (*at, evidence.outcome, None)));
                }
                Some(base) => {
                    let live = (rule.metric.as_str(), MetricSource::Live);
                    let others =
                        series_points(conn, (base.version_id, subject.environment_id), live, None, i64::MAX).await?;
                    for at in &steps {
                        let (evidence, concurrent) =
                            judge(test, rule.window, (&points, &others), *at, base.switched_at);
                        baseline_used = Some(Baseline { version: base.number, concurrent });
                        verdicts.push((*at, evidence.outcome, evidence.shift));
                    }
                }
            }
        }
    }
    let first_failure = verdicts.iter().find(|(_, o, _)| *o == Outcome::Fail).map(|(at, _, _)| rfc3339(*at));
    let mut spans: Vec<ReplaySpan> = Vec::new();
    let start = points.first().map_or(0, |p| p.timestamp);
    let mut from = start;
    for (i, (at, outcome, value)) in verdicts.iter().enumerate() {
        let next_differs = verdicts.get(i + 1).is_none_or(|(_, o, _)| o != outcome);
        if i == 0 || verdicts[i - 1].1 != *outcome {
            spans.push(ReplaySpan { from: rfc3339(from), to: String::new(), outcome: *outcome, value: *value });
        }
        if next_differs {
            if let Some(span) = spans.last_mut() {
                span.to = rfc3339(*at);
            }
            from = *at;
        }
    }
    Ok(Replay {
        version: subject.number,
        points: points.len() as i64,
        evaluations: verdicts.len() as i64,
        spans,
        first_failure,
        baseline: baseline_used,
        guardrail: rule,
    })
}
