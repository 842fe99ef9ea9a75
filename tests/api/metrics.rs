//! Metrics: ingest validation, downsampled series that keep every bucket's extremes, raw CSV,
//! guardrails per aggregation and window, health transitions as points arrive, and live events.

use modelgate_tests::{Backend, EventStream, TEST_EPOCH_MS, TestApp, expect_error, json, on_both_backends, seed_model};
use serde_json::{Value, json};

on_both_backends!(
    ingest_validates_every_point_and_stores_all_or_nothing,
    series_are_listed_downsampled_ranged_and_exported,
    guardrails_reduce_their_window_with_each_aggregation,
    health_follows_points_and_rule_changes,
    events_stream_new_points_and_health_changes,
    one_metric_is_compared_across_versions,
    time_windows_move_on_without_new_points,
);

const METRICS: &str = "/api/v1/models/m/versions/1/metrics";

async fn ingest_validates_every_point_and_stores_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let good = json!({ "key": "loss", "value": 0.5 });
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "key": "loss", "value": "NaN" }), "points[1].value"),
        (json!({ "key": "loss", "value": "-Infinity" }), "points[1].value"),
        (json!({ "key": "loss", "value": "high" }), "points[1].value"),
        (json!({ "key": "loss" }), "points[1].value"),
        (json!({ "key": "", "value": 1 }), "points[1].key"),
        (json!({ "key": "bad\u{1}key", "value": 1 }), "points[1].key"),
        (json!({ "key": "k".repeat(251), "value": 1 }), "points[1].key"),
        (json!({ "key": "loss", "value": 1, "timestamp": -5 }), "points[1].timestamp"),
        (json!({ "key": "loss", "value": 1, "step": "one" }), "points[1].step"),
        (json!({ "key": "loss", "value": 1, "source": "prod" }), "points[1].source"),
        (json!({ "key": "loss", "value": 1, "source": "live" }), "points[1].environment"),
        (json!({ "key": "loss", "value": 1, "source": "live", "environment": "mars" }), "points[1].environment"),
        (json!({ "key": "loss", "value": 1, "environment": "staging" }), "points[1].environment"),
        (json!({ "key": "loss", "value": 1, "colour": "red" }), "points[1]"),
    ];
    for (bad, field) in cases {
        let response = app.post(METRICS, &json!({ "points": [good, bad] })).await;
        let body = json(response, 422).await;
        let named = body["error"]["details"]["field"].as_str().unwrap_or_default().to_string();
        assert!(named.starts_with(field), "{bad} should name {field}: {body}");
    }
    expect_error(app.post(METRICS, &json!({ "points": [] })).await, 422, Some("points")).await;
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({ "key": "loss", "value": i })).collect();
    expect_error(app.post(METRICS, &json!({ "points": too_many })).await, 422, Some("points")).await;
    let bare_nan = app
        .client
        .post(app.url(METRICS))
        .header("content-type", "application/json")
        .body(r#"{"points":[{"key":"loss","value":NaN}]}"#)
        .send()
        .await
        .unwrap();
    expect_error(bare_nan, 400, None).await;
    expect_error(app.post("/api/v1/models/m/versions/9/metrics", &json!({ "points": [good] })).await, 404, None).await;
    expect_error(app.post("/api/v1/models/x/versions/1/metrics", &json!({ "points": [good] })).await, 404, None).await;
    let viewer = app.client_as("watcher", &[app::domain::Role::Viewer]).await;
    let refused = viewer.post(app.url(METRICS)).json(&json!({ "points": [good] })).send().await.unwrap();
    assert_eq!(refused.status(), 403);

    let listed = json(app.get(METRICS).await, 200).await;
    assert_eq!(listed, json!([]), "no refused batch stored a point");
    let audit_head = app.audit_head().await;

    let accepted =
        json(app.post(METRICS, &json!({ "points": [good, { "key": "acc", "value": 1e-3 }] })).await, 201).await;
    assert_eq!(accepted["accepted"], 2);
    assert_eq!(accepted["series"].as_array().unwrap().len(), 2);
    assert_eq!(app.audit_head().await, audit_head, "measurements are data, not audited changes");
}

/// A batch of `n` eval points of `key` from `start`: a slow wave with one-point spikes at fixed steps.
fn wave(key: &str, start: i64, n: i64) -> Value {
    let points: Vec<Value> = (start..start + n)
        .map(|i| {
            let value = match i {
                7_777 => 1_000.0,
                15_001 => -1_000.0,
                _ => (i as f64 / 300.0).sin(),
            };
            json!({ "key": key, "value": value, "timestamp": TEST_EPOCH_MS + i * 1_000 })
        })
        .collect();
    json!({ "points": points })
}

async fn series_are_listed_downsampled_ranged_and_exported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    for start in (0..20_000).step_by(5_000) {
        // No steps given: each batch continues the series where the last one ended.
        json(app.post(METRICS, &wave("val/loss", start, 5_000)).await, 201).await;
    }
    json(
        app.post(METRICS, &json!({ "points": [{ "key": "val/loss", "value": 3.5, "step": 4, "source": "live", "environment": "staging" }] }))
            .await,
        201,
    )
    .await;
    let listed = json(app.get(METRICS).await, 200).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let eval = &listed[0];
    assert_eq!(
        (eval["key"].as_str(), eval["source"].as_str(), eval["count"].as_i64()),
        (Some("val/loss"), Some("eval"), Some(20_000))
    );
    assert_eq!(eval["first"]["step"], 0);
    assert_eq!(eval["last"]["step"], 19_999);
    assert_eq!(eval["last"]["timestamp"], TEST_EPOCH_MS + 19_999_000);
    assert_eq!((eval["min"].as_f64(), eval["max"].as_f64()), (Some(-1_000.0), Some(1_000.0)));
    assert_eq!(listed[1]["environment"], "staging");

    let key = "/api/v1/models/m/versions/1/metrics/val%2Floss";
    let reduced = json(app.get(&format!("{key}?max_points=100&source=eval")).await, 200).await;
    let series = &reduced["series"][0];
    assert_eq!(reduced["series"].as_array().unwrap().len(), 1, "filtered to the eval series");
    assert_eq!((series["total"].as_i64(), series["downsampled"].as_bool()), (Some(20_000), Some(true)));
    let points = series["points"].as_array().unwrap();
    assert!(points.len() <= 100 && points.len() >= 90, "{} points", points.len());
    let values: Vec<f64> = points.iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert!(values.contains(&1_000.0) && values.contains(&-1_000.0), "both one-point spikes survive");
    let steps: Vec<i64> = points.iter().map(|p| p["step"].as_i64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "points stay in order");
    assert!(steps[0] < 250 && *steps.last().unwrap() > 19_750, "the whole range is covered");

    let both = json(app.get(key).await, 200).await;
    assert_eq!(both["series"].as_array().unwrap().len(), 2, "eval and live(staging)");
    assert_eq!(both["series"][1]["points"], json!([{ "step": 4, "timestamp": TEST_EPOCH_MS, "value": 3.5 }]));

    let zoomed = json(app.get(&format!("{key}?source=eval&from=1000&to=1999&max_points=2000")).await, 200).await;
    let zoomed = &zoomed["series"][0];
    assert_eq!((zoomed["total"].as_i64(), zoomed["downsampled"].as_bool()), (Some(1_000), Some(false)));
    let steps: Vec<i64> = zoomed["points"].as_array().unwrap().iter().map(|p| p["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, (1000..2000).collect::<Vec<_>>(), "every raw point of the range");

    let from = TEST_EPOCH_MS + 7_000_000;
    let by_time = json(
        app.get(&format!("{key}?source=eval&axis=time&from={from}&to={}&max_points=10", from + 999_000)).await,
        200,
    )
    .await;
    let by_time = &by_time["series"][0];
    assert_eq!(by_time["total"], 1_000);
    let values: Vec<f64> = by_time["points"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert!(values.len() <= 10 && values.contains(&1_000.0), "a zoomed range keeps its spike: {values:?}");

    expect_error(app.get(&format!("{key}?max_points=1")).await, 422, Some("max_points")).await;
    expect_error(app.get(&format!("{key}?from=5&to=1")).await, 422, Some("to")).await;
    expect_error(app.get(&format!("{key}?axis=depth")).await, 422, Some("axis")).await;
    expect_error(app.get("/api/v1/models/m/versions/1/metrics/nothing").await, 404, None).await;

    let csv = app.get(&format!("{key}.csv")).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 20_000 + 1, "header, every eval point, the live point");
    assert_eq!(lines[0], "source,environment,step,timestamp,value");
    assert_eq!(lines[7_778], format!("eval,,7777,{},1000", TEST_EPOCH_MS + 7_777_000));
    assert_eq!(lines[20_001], format!("live,staging,4,{TEST_EPOCH_MS},3.5"));
}

/// Creates a guardrail through the API and returns its id.
async fn guardrail(app: &TestApp, rule: Value) -> i64 {
    json(app.post("/api/v1/models/m/guardrails", &rule).await, 201).await["id"].as_i64().unwrap()
}

/// Adds one rule per aggregation on `metric` in `environment` (window, comparator and threshold
/// shared) and returns version 1's checks of that metric there, in the order of `aggregations`.
async fn checks_per_aggregation(
    app: &TestApp,
    (environment, metric): (&str, &str),
    (window, comparator, threshold): (Value, &str, f64),
    aggregations: &[&str],
) -> Vec<Value> {
    for aggregation in aggregations {
        guardrail(
            app,
            json!({ "environment": environment, "metric": metric, "aggregation": aggregation,
                "window": window, "comparator": comparator, "threshold": threshold, "enforced": true }),
        )
        .await;
    }
    let reports = json(app.get("/api/v1/models/m/versions/1/health").await, 200).await;
    let report = reports.as_array().unwrap().iter().find(|r| r["environment"] == environment).unwrap();
    report["checks"].as_array().unwrap().iter().filter(|c| c["guardrail"]["metric"] == metric).cloned().collect()
}

/// The version's health report in production.
async fn production_report(app: &TestApp, version: i64) -> Value {
    let reports = json(app.get(&format!("/api/v1/models/m/versions/{version}/health")).await, 200).await;
    reports.as_array().unwrap().iter().find(|r| r["environment"] == "production").cloned().unwrap_or(Value::Null)
}

async fn guardrails_reduce_their_window_with_each_aggregation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    // Twelve live points; the last five are 1, 2, 3, 4, 100 (older ones must not count).
    let points: Vec<Value> = [50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 1.0, 2.0, 3.0, 4.0, 100.0]
        .iter()
        .map(|v| json!({ "key": "latency_ms", "value": v, "source": "live", "environment": "production" }))
        .collect();
    json(app.post(METRICS, &json!({ "points": points })).await, 201).await;
    let expected = [("last", 100.0), ("mean", 22.0), ("min", 1.0), ("max", 100.0), ("p95", 100.0), ("p99", 100.0)];
    let aggregations = expected.map(|(a, _)| a);
    let window = (json!({ "points": 5 }), "<=", 50.0);
    let checks = checks_per_aggregation(&app, ("production", "latency_ms"), window, &aggregations).await;
    assert_eq!(checks.len(), 6);
    for (check, (aggregation, value)) in checks.iter().zip(expected) {
        assert_eq!(check["guardrail"]["aggregation"], aggregation);
        assert_eq!(check["points"], 5, "{aggregation} reads the last 5 points");
        assert_eq!(check["observed"].as_f64(), Some(value), "{aggregation}");
        assert_eq!(check["holds"], value <= 50.0, "{aggregation}");
    }
    assert_eq!(production_report(&app, 1).await["health"], "failing");

    // A time window: only points of the last 5 minutes count.
    let now = TEST_EPOCH_MS;
    let timed: Vec<Value> = [(now - 600_000, 900.0), (now - 60_000, 10.0), (now, 20.0)]
        .iter()
        .map(|(t, v)| json!({ "key": "error_rate", "value": v, "timestamp": t, "source": "live", "environment": "staging" }))
        .collect();
    json(app.post(METRICS, &json!({ "points": timed })).await, 201).await;
    guardrail(
        &app,
        json!({ "environment": "staging", "metric": "error_rate", "aggregation": "max",
        "window": { "minutes": 5 }, "comparator": "<", "threshold": 25, "enforced": true }),
    )
    .await;
    let reports = json(app.get("/api/v1/models/m/versions/1/health").await, 200).await;
    let staging = reports.as_array().unwrap().iter().find(|r| r["environment"] == "staging").unwrap();
    assert_eq!(staging["checks"][0]["points"], 2);
    assert_eq!(staging["checks"][0]["observed"], 20.0);
    assert_eq!(staging["health"], "healthy");

    // A time window over many chunks: whole chunks count from their stats, the edges point by point.
    let many: Vec<Value> = (0..3_000)
        .map(|i| json!({ "key": "requests", "value": i, "timestamp": now - 3_000_000 + i * 1_000, "source": "live", "environment": "staging" }))
        .collect();
    json(app.post(METRICS, &json!({ "points": many })).await, 201).await;
    let expected = [("mean", 1_799.5), ("min", 600.0), ("max", 2_999.0), ("last", 2_999.0), ("p95", 2_879.0)];
    let window = (json!({ "minutes": 40 }), ">=", 0.0);
    let checks = checks_per_aggregation(&app, ("staging", "requests"), window, &expected.map(|(a, _)| a)).await;
    for (check, (aggregation, value)) in checks.iter().zip(expected) {
        assert_eq!(check["points"], 2_400, "{aggregation}: the last 40 minutes");
        assert_eq!(check["observed"].as_f64(), Some(value), "{aggregation}");
    }

    // A window of an hour over 70,000 points: whole blocks of 64 chunks count from their stats too.
    for batch in 0..7 {
        let points: Vec<Value> = (batch * 10_000..(batch + 1) * 10_000)
            .map(|i| json!({ "key": "qps", "value": i, "timestamp": now - 4_200_000 + i * 60, "source": "live", "environment": "production" }))
            .collect();
        json(app.post(METRICS, &json!({ "points": points })).await, 201).await;
    }
    let expected = [("mean", 39_999.5), ("min", 10_000.0), ("max", 69_999.0), ("last", 69_999.0), ("p99", 69_399.0)];
    let window = (json!({ "minutes": 60 }), ">=", 0.0);
    let checks = checks_per_aggregation(&app, ("production", "qps"), window, &expected.map(|(a, _)| a)).await;
    for (check, (aggregation, value)) in checks.iter().zip(expected) {
        assert_eq!(check["points"], 60_000, "{aggregation}: the last hour");
        assert_eq!(check["observed"].as_f64(), Some(value), "{aggregation}");
    }

    for (bad, field) in [
        (json!({ "window": { "points": 0 } }), "window.points"),
        (json!({ "window": { "minutes": 100_000 } }), "window.minutes"),
        (json!({ "environment": "mars" }), "environment"),
        (json!({ "metric": "a,b" }), "metric"),
        (json!({ "aggregation": "median" }), "aggregation"),
        (json!({ "comparator": "==" }), "comparator"),
    ] {
        let mut rule = json!({ "environment": "production", "metric": "latency_ms", "aggregation": "mean",
            "window": { "points": 5 }, "comparator": "<=", "threshold": 50 });
        for (k, v) in bad.as_object().unwrap() {
            rule[k] = v.clone();
        }
        let body = json(app.post("/api/v1/models/m/guardrails", &rule).await, 422).await;
        let named = body["error"]["details"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{bad} should name {field}: {body}");
    }
}

async fn health_follows_points_and_rule_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    json(app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 2 })).await, 201).await;
    let head = app.audit_head().await;
    let latency = guardrail(
        &app,
        json!({ "environment": "production", "metric": "latency_ms", "aggregation": "p99",
        "window": { "points": 10 }, "comparator": "<=", "threshold": 250, "enforced": true }),
    )
    .await;
    let live = |values: &[f64]| {
        let points: Vec<Value> = values
            .iter()
            .map(|v| json!({ "key": "latency_ms", "value": v, "source": "live", "environment": "production" }))
            .collect();
        json!({ "points": points })
    };
    let health = |model: &Value| {
        model["health"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["environment"] == "production")
            .map(|h| h["health"].clone())
    };

    let model = json(app.get("/api/v1/models/m").await, 200).await;
    assert_eq!(health(&model), Some(json!("unknown")), "a live version without points is unknown");

    let v2 = "/api/v1/models/m/versions/2/metrics";
    let report = json(app.post(v2, &live(&[120.0; 10])).await, 201).await;
    assert_eq!(report["health"][0]["health"], "healthy");
    json(app.post(v2, &live(&[900.0])).await, 201).await;
    let model = json(app.get("/api/v1/models/m").await, 200).await;
    assert_eq!(health(&model), Some(json!("failing")), "one slow request in the last 10 breaks p99");
    let listed = json(app.get("/api/v1/models?q=m").await, 200).await;
    assert_eq!(health(&listed["items"][0]), Some(json!("failing")), "the models list shows it too");
    let version = json(app.get("/api/v1/models/m/versions/2").await, 200).await;
    assert_eq!(version["health"][0]["environment"], "production");
    assert_eq!(version["health"][0]["health"], "failing");
    json(app.post(v2, &live(&[110.0; 10])).await, 201).await;
    let version = json(app.get("/api/v1/models/m/versions/2").await, 200).await;
    assert_eq!(version["health"][0]["health"], "healthy", "recovers once the window is fast again");

    // An eval rule of warning severity: unknown until eval points arrive, then warning.
    let accuracy = guardrail(&app, json!({ "environment": "production", "metric": "accuracy", "source": "eval",
        "aggregation": "mean", "window": { "points": 3 }, "comparator": ">=", "threshold": 0.9, "severity": "warning", "enforced": true }))
    .await;
    assert_eq!(production_report(&app, 2).await["health"], "unknown");
    let eval: Vec<Value> = [0.95, 0.85, 0.8].iter().map(|v| json!({ "key": "accuracy", "value": v })).collect();
    json(app.post(v2, &json!({ "points": eval })).await, 201).await;
    let report = production_report(&app, 2).await;
    assert_eq!(report["health"], "warning");
    let observed = report["checks"][1]["observed"].as_f64().unwrap();
    assert!((observed - 0.8666).abs() < 1e-3, "{observed}");

    // Editing the rule re-evaluates at once.
    let edited = json!({ "environment": "production", "metric": "accuracy", "source": "eval", "aggregation": "mean",
        "window": { "points": 3 }, "comparator": ">=", "threshold": 0.8, "severity": "warning" });
    let updated = json(
        app.client.put(app.url(&format!("/api/v1/models/m/guardrails/{accuracy}"))).json(&edited).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(updated["threshold"], 0.8);
    let version = json(app.get("/api/v1/models/m/versions/2").await, 200).await;
    assert_eq!(version["health"][0]["health"], "healthy");
    let deleted = json(app.delete(&format!("/api/v1/models/m/guardrails/{latency}")).await, 200).await;
    assert_eq!(deleted["metric"], "latency_ms");
    let rules = json(app.get("/api/v1/models/m/guardrails").await, 200).await;
    assert_eq!(rules.as_array().unwrap().len(), 1);
    expect_error(app.delete(&format!("/api/v1/models/m/guardrails/{latency}")).await, 404, None).await;

    // Each rule change is one audit entry; each change of a rule's verdict on a version one more,
    // by the system (the ingests themselves add none).
    let entries = json(app.get("/api/v1/audit?limit=100").await, 200).await;
    let since_head: Vec<&Value> =
        entries["entries"].as_array().unwrap().iter().take_while(|e| e["seq"].as_i64().unwrap() > head).collect();
    let (verdicts, changes): (Vec<&Value>, Vec<&Value>) =
        since_head.iter().partition(|e| e["action"] == "guardrail.verdict");
    let actions: Vec<&str> = changes.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["guardrail.delete", "guardrail.update", "guardrail.create", "guardrail.create"]);
    assert!(verdicts.iter().all(|v| v["actor"] == "system (guardrails)" && v["version"] == 2), "{verdicts:?}");
    let outcomes: Vec<(&str, &str)> = verdicts
        .iter()
        .rev()
        .filter(|v| v["after"]["rule"].as_str().unwrap().starts_with("p99"))
        .map(|v| (v["before"]["outcome"].as_str().unwrap(), v["after"]["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [("no_data", "pass"), ("pass", "fail"), ("fail", "pass")],
        "the latency rule's verdicts on v2"
    );
    let update = changes[1];
    assert_eq!(update["before"]["threshold"], 0.9);
    assert_eq!(update["after"]["threshold"], 0.8);
    assert_eq!(update["model"], "m");
    assert_eq!(update["environment"], "production");
}

/// Reads server-sent events until one named `name` arrives; returns its JSON data.
async fn events_stream_new_points_and_health_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    guardrail(
        &app,
        json!({ "environment": "production", "metric": "latency_ms", "aggregation": "max",
        "window": { "points": 3 }, "comparator": "<=", "threshold": 250, "enforced": true }),
    )
    .await;
    let mut stream = EventStream::open(app.client.get(app.url("/api/v1/events?model=m&version=1"))).await;
    let anonymous = app.anonymous.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Version 2's points are filtered out; version 1's arrive.
    json(
        app.post("/api/v1/models/m/versions/2/metrics", &json!({ "points": [{ "key": "other", "value": 1 }] })).await,
        201,
    )
    .await;
    let slow = json!({ "points": [
        { "key": "latency_ms", "value": 300, "source": "live", "environment": "production" },
        { "key": "accuracy", "value": 0.9 },
    ] });
    json(app.post(METRICS, &slow).await, 201).await;
    let metrics = stream.next("metrics").await;
    assert_eq!(metrics.id, None, "new points are a transient hint, not a numbered event");
    assert_eq!(
        metrics.data,
        json!({ "type": "metrics", "model": "m", "version": 1, "keys": ["latency_ms", "accuracy"], "points": 2 })
    );
    let health = stream.next("health").await;
    assert!(health.id.is_some(), "health changes are numbered, so a subscriber can resume after them");
    assert_eq!(
        health.data,
        json!({ "type": "health", "model": "m", "version": 1, "environment": "production", "health": "failing", "previous": "unknown" })
    );
}

async fn one_metric_is_compared_across_versions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    let empty = json(app.get("/api/v1/models/m/metrics").await, 200).await;
    assert_eq!(empty, json!({ "keys": [], "key": null, "versions": [] }));
    for (version, last) in [(1, 0.81), (3, 0.93)] {
        let points: Vec<Value> = (0..100)
            .map(|i| json!({ "key": "accuracy", "value": if i == 99 { last } else { 0.5 + f64::from(i) / 1000.0 } }))
            .chain([json!({ "key": "loss", "value": 0.3 })])
            .collect();
        json(
            app.post(&format!("/api/v1/models/m/versions/{version}/metrics"), &json!({ "points": points })).await,
            201,
        )
        .await;
    }
    json(
        app.post("/api/v1/models/m/versions/2/metrics", &json!({ "points": [{ "key": "loss", "value": 0.2 }] })).await,
        201,
    )
    .await;
    // loss is in three versions, accuracy in two: loss is the default.
    let across = json(app.get("/api/v1/models/m/metrics").await, 200).await;
    assert_eq!(across["keys"], json!(["accuracy", "loss"]));
    assert_eq!(across["key"], "loss");
    assert_eq!(across["versions"].as_array().unwrap().len(), 3);
    let accuracy = json(app.get("/api/v1/models/m/metrics?key=accuracy").await, 200).await;
    let versions = accuracy["versions"].as_array().unwrap();
    assert_eq!(versions.iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(versions[1]["last"], 0.93);
    assert_eq!(versions[1]["count"], 100);
    assert_eq!((versions[0]["min"].as_f64(), versions[0]["max"].as_f64()), (Some(0.5), Some(0.81)));
    let trend = versions[0]["trend"].as_array().unwrap();
    assert!(trend.len() <= 24 && trend.len() >= 20, "a sparkline's worth: {}", trend.len());
    expect_error(app.get("/api/v1/models/m/metrics?key=a%2Cb").await, 422, Some("key")).await;
    expect_error(app.get("/api/v1/models/nope/metrics").await, 404, None).await;
    // The models list carries the same key across versions, each version's last value (its
    // sparkline); a model without points has none.
    seed_model(&app, "quiet", 1).await;
    let list = json(app.get("/api/v1/models?sort=name").await, 200).await;
    let item = |name: &str| list["items"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone();
    assert_eq!(
        item("m")["key_metric"],
        json!({ "key": "loss", "versions": [
            { "version": 1, "value": 0.3 }, { "version": 2, "value": 0.2 }, { "version": 3, "value": 0.3 }
        ] })
    );
    assert!(item("quiet").get("key_metric").is_none(), "{}", item("quiet"));
    assert!(json(app.get("/api/v1/models/m").await, 200).await.get("key_metric").is_none(), "lists only");
}

async fn time_windows_move_on_without_new_points(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    guardrail(
        &app,
        json!({ "environment": "production", "metric": "error_rate", "aggregation": "max",
        "window": { "minutes": 5 }, "comparator": "<=", "threshold": 0.05, "enforced": true }),
    )
    .await;
    let point =
        json!({ "points": [{ "key": "error_rate", "value": 0.01, "source": "live", "environment": "production" }] });
    json(app.post(METRICS, &point).await, 201).await;
    assert_eq!(production_report(&app, 1).await["health"], "healthy");
    assert_eq!(app.store.reevaluate_time_windows().await.unwrap(), 0, "nothing moved yet");
    // Ten minutes of silence: the window is empty, the verdict stored for the version goes unknown.
    app.clock.advance(10 * 60_000);
    assert_eq!(app.store.reevaluate_time_windows().await.unwrap(), 1);
    let version = json(app.get("/api/v1/models/m/versions/1").await, 200).await;
    assert_eq!(version["health"][0]["health"], "unknown");
    assert_eq!(version["health"][0]["since"], "2026-01-01T00:10:00Z");
    assert_eq!(app.store.reevaluate_time_windows().await.unwrap(), 0, "re-evaluating again changes nothing");
}

/// Points stored through one server reach live-chart subscribers of another on the same
/// PostgreSQL database (a notification, not a stored event): every key, even when there are too
/// many for one notification; the server that stored them tells its own subscribers once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_points_through_one_server_reach_subscribers_of_another() {
    let modelgate_tests::Replicas { servers, client, .. } = &modelgate_tests::Replicas::start(&["operator"]).await;
    let (one, other) = (&servers[0].base, &servers[1].base);
    let post = |path: &str, body: Value| client.post(format!("{one}{path}")).json(&body).send();
    assert_eq!(post("/api/v1/models", json!({ "name": "m" })).await.unwrap().status(), 201);
    let version = json!({ "artifact_uri": "s3://m/1", "artifact_digest": modelgate_tests::digest(1) });
    assert_eq!(post("/api/v1/models/m/versions", version).await.unwrap().status(), 201);
    let subscribe = |base: &str| client.get(format!("{base}/api/v1/events?model=m&version=1&types=metrics"));
    let (mut here, mut there) = (EventStream::open(subscribe(one)).await, EventStream::open(subscribe(other)).await);

    // 60 keys of 200 characters: more than one notification holds.
    let keys: Vec<String> = (0..60).map(|i| format!("k{i:02}-{}", "x".repeat(196))).collect();
    let points: Vec<Value> = keys.iter().map(|k| json!({ "key": k, "value": 1.0 })).collect();
    assert_eq!(post(METRICS, json!({ "points": points })).await.unwrap().status(), 201);
    let mut heard: Vec<String> = Vec::new();
    let mut notices = 0;
    while heard.len() < keys.len() {
        let event = there.next("metrics").await;
        assert_eq!((event.data["model"].as_str(), event.data["version"].as_i64()), (Some("m"), Some(1)));
        heard.extend(event.data["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()));
        notices += 1;
    }
    heard.sort();
    assert_eq!(heard, keys, "every key once, across {notices} notifications");
    assert!(notices > 1, "the keys did not need splitting");
    let own = here.next("metrics").await;
    assert_eq!(own.data["keys"].as_array().unwrap().len(), keys.len(), "the storing server's own event is whole");
    here.expect_none("metrics", std::time::Duration::from_millis(500)).await;
}
