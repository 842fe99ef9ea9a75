//! Comparison rules: a version judged against the one it replaced (outcomes and evidence for known
//! data, the same minutes while both serve), observe mode and enforcing, replay, and an automatic
//! rollback request filed only on a failed verdict.

use modelgate_tests::{Backend, TEST_EPOCH_MS, TestApp, expect_error, json, on_both_backends, seed_model};
use serde_json::{Value, json};

on_both_backends!(
    comparisons_judge_a_version_against_the_one_it_replaced,
    observed_rules_never_change_health_and_only_a_failure_files_a_request,
    replay_gives_the_verdict_timeline_over_history,
);

/// 300 latencies spread evenly over 90..110 ms (scaled by `factor`), one a second from `start`.
fn latencies(start: i64, factor: f64) -> Value {
    let points: Vec<Value> = (0..300)
        .map(|i: i64| {
            let value = (90.0 + 20.0 * ((i * 7_919) % 101) as f64 / 100.0) * factor;
            json!({ "key": "latency_ms", "value": value, "timestamp": start + i * 1_000,
                    "source": "live", "environment": "production" })
        })
        .collect();
    json!({ "points": points })
}

async fn deploy(app: &TestApp, version: i64) {
    let path = "/api/v1/models/m/environments/production/deploy";
    json(app.post(path, &json!({ "version": version })).await, 201).await;
}

async fn push(app: &TestApp, version: i64, body: &Value) {
    json(app.post(&format!("/api/v1/models/m/versions/{version}/metrics"), body).await, 201).await;
}

/// The server's minute sweep, which judges comparison rules and stores their verdicts and health.
async fn sweep(app: &TestApp) {
    app.store.reevaluate_time_windows().await.unwrap();
}

/// A comparison rule on latency in production: 10 % tolerated (or `tolerance`), the sequential test.
fn comparison(tolerance: f64, min_points: usize, enforced: bool) -> Value {
    json!({ "environment": "production", "metric": "latency_ms", "window": { "points": 300 },
            "comparison": { "direction": "higher_is_worse", "tolerance": { "relative": tolerance },
                            "test": "sequential", "min_points": min_points, "confidence": 0.95 },
            "enforced": enforced })
}

async fn rule(app: &TestApp, body: &Value) -> i64 {
    json(app.post("/api/v1/models/m/guardrails", body).await, 201).await["id"].as_i64().unwrap()
}

/// Version `number`'s check of rule `id` in production.
async fn check(app: &TestApp, number: i64, id: i64) -> Value {
    let reports = json(app.get(&format!("/api/v1/models/m/versions/{number}/health")).await, 200).await;
    let production = reports.as_array().unwrap().iter().find(|r| r["environment"] == "production").unwrap();
    production["checks"].as_array().unwrap().iter().find(|c| c["guardrail"]["id"] == id).unwrap().clone()
}

async fn production_health(app: &TestApp, number: i64) -> Value {
    let version = json(app.get(&format!("/api/v1/models/m/versions/{number}")).await, 200).await;
    let health = version["health"].as_array().unwrap().iter().find(|h| h["environment"] == "production").cloned();
    health.map_or(json!("unknown"), |h| h["health"].clone())
}

/// v1 served five minutes, then v2 replaced it.
async fn v2_replaced_v1(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    deploy(&app, 1).await;
    push(&app, 1, &latencies(TEST_EPOCH_MS, 1.0)).await;
    app.clock.advance(10 * 60_000);
    deploy(&app, 2).await;
    app
}

async fn comparisons_judge_a_version_against_the_one_it_replaced(backend: Backend) {
    let app = v2_replaced_v1(backend).await;
    let switch = TEST_EPOCH_MS + 10 * 60_000;
    let tolerant = rule(&app, &comparison(0.10, 30, true)).await;
    let at_the_edge = rule(&app, &comparison(0.30, 30, true)).await;
    let demanding = rule(&app, &comparison(0.10, 1_000, true)).await;
    assert_eq!(check(&app, 2, tolerant).await["outcome"], "no_data", "no points yet");

    // As fast as v1 was: pass; the evidence names v1's window before the switch.
    push(&app, 2, &latencies(switch, 1.0)).await;
    sweep(&app).await;
    let pass = check(&app, 2, tolerant).await;
    assert_eq!(pass["outcome"], "pass", "{pass}");
    assert_eq!(pass["baseline"], json!({ "version": 1, "concurrent": false }));
    let evidence = &pass["evidence"];
    assert_eq!((evidence["baseline_points"].as_i64(), evidence["candidate_points"].as_i64()), (Some(300), Some(300)));
    assert_eq!((evidence["test"].as_str(), evidence["relative"].as_bool()), (Some("sequential"), Some(true)));
    let (low, high) = (evidence["low"].as_f64().unwrap(), evidence["high"].as_f64().unwrap());
    assert!(low < 0.0 && high > 0.0 && high < 0.10, "no shift, and confidently less than 10 %: [{low}, {high}]");
    assert!(evidence["statistic"].is_number() && evidence["p_value"].as_f64().unwrap() > 0.05, "{evidence}");
    assert_eq!(check(&app, 2, demanding).await["outcome"], "no_data");
    assert!(check(&app, 2, demanding).await["evidence"]["note"].as_str().unwrap().contains("1000 points"));
    assert_eq!(production_health(&app, 2).await, "unknown", "an enforced rule without data leaves it unknown");

    // 30 % slower: fails the 10 % rule; exactly at the 30 % rule's edge, that one cannot tell.
    push(&app, 2, &latencies(switch + 300_000, 1.3)).await;
    assert_eq!(production_health(&app, 2).await, "unknown", "comparisons are judged by the sweep, not each batch");
    sweep(&app).await;
    let fail = check(&app, 2, tolerant).await;
    assert_eq!(fail["outcome"], "fail", "{fail}");
    let shift = fail["evidence"]["shift"].as_f64().unwrap();
    assert!((shift - 0.3).abs() < 1e-9, "+30 % estimated: {shift}");
    assert!(fail["evidence"]["low"].as_f64().unwrap() > 0.10, "the whole interval is beyond 10 %: {fail}");
    assert_eq!(check(&app, 2, at_the_edge).await["outcome"], "inconclusive");
    assert_eq!(production_health(&app, 2).await, "failing", "only the failed rule fails it");

    // The verdict changes are in the audit log, with their evidence, by the system.
    let verdicts = json(app.get("/api/v1/audit?action=guardrail.verdict&limit=50").await, 200).await;
    let of_tolerant: Vec<&Value> = verdicts["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"].as_str().unwrap().ends_with(&format!("/guardrails/{tolerant}")))
        .collect();
    let outcomes: Vec<&str> = of_tolerant.iter().rev().map(|e| e["after"]["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["pass", "fail"]);
    assert_eq!(of_tolerant[0]["actor"], "system (guardrails)");
    assert_eq!(of_tolerant[0]["version"], 2);
    let text = of_tolerant[0]["after"]["evidence"].as_str().unwrap();
    assert!(text.starts_with("+30.0 % [") && text.contains("vs v1's last window before the switch"), "{text}");

    let without = json(app.get("/api/v1/audit?model=m&verdicts=false&limit=100").await, 200).await;
    let actions: Vec<&str> =
        without["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        !actions.is_empty() && !actions.contains(&"guardrail.verdict"),
        "verdicts=false leaves them out: {actions:?}"
    );

    // A canary: v3 serves beside v2 (never replaced anything): v2 over the same minutes is its baseline.
    let later = switch + 3_600_000;
    push(&app, 2, &latencies(later, 1.0)).await;
    push(&app, 3, &latencies(later, 1.0)).await;
    let canary = check(&app, 3, tolerant).await;
    assert_eq!(canary["baseline"], json!({ "version": 2, "concurrent": true }), "{canary}");
    assert_eq!(canary["outcome"], "pass");

    // Bad rules are refused naming the field.
    let mut bad = comparison(1.5, 30, false);
    expect_error(app.post("/api/v1/models/m/guardrails", &bad).await, 422, Some("comparison.tolerance.relative")).await;
    bad = comparison(0.1, 1, false);
    expect_error(app.post("/api/v1/models/m/guardrails", &bad).await, 422, Some("comparison.min_points")).await;
    bad = comparison(0.1, 30, false);
    bad["comparison"]["confidence"] = json!(95);
    expect_error(app.post("/api/v1/models/m/guardrails", &bad).await, 422, Some("comparison.confidence")).await;
    bad = comparison(0.1, 30, false);
    bad["threshold"] = json!(250);
    expect_error(app.post("/api/v1/models/m/guardrails", &bad).await, 422, Some("threshold")).await;
    bad = comparison(0.1, 30, false);
    bad["source"] = json!("eval");
    expect_error(app.post("/api/v1/models/m/guardrails", &bad).await, 422, Some("source")).await;
    let neither = json!({ "environment": "production", "metric": "latency_ms", "window": { "points": 5 } });
    expect_error(app.post("/api/v1/models/m/guardrails", &neither).await, 422, Some("aggregation")).await;
    let rules = json(app.get("/api/v1/models/m/guardrails").await, 200).await;
    assert_eq!(rules.as_array().unwrap().len(), 3, "nothing half-stored");
}

async fn observed_rules_never_change_health_and_only_a_failure_files_a_request(backend: Backend) {
    let app = v2_replaced_v1(backend).await;
    let switch = TEST_EPOCH_MS + 10 * 60_000;
    let policy = json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "auto_request": true });
    let response = app.client.put(app.url("/api/v1/environments/production/policy")).json(&policy).send();
    json(response.await.unwrap(), 200).await;
    let observed = rule(&app, &comparison(0.10, 30, false)).await;
    let inconclusive = rule(&app, &comparison(0.30, 30, true)).await;
    let listed = json(app.get("/api/v1/models/m/guardrails").await, 200).await;
    assert_eq!(listed[0]["enforced"], false, "a new rule is observed unless asked");

    // v2 30 % slower: the observed rule fails, the enforced one is inconclusive; health stays unknown, nothing is filed.
    push(&app, 2, &latencies(switch, 1.3)).await;
    sweep(&app).await;
    assert_eq!(check(&app, 2, observed).await["outcome"], "fail");
    assert_eq!(check(&app, 2, inconclusive).await["outcome"], "inconclusive");
    assert_eq!(production_health(&app, 2).await, "unknown");
    assert_eq!(json(app.get("/api/v1/rollbacks").await, 200).await["total"], 0, "neither files a request");

    // An operator may write rules but not enforce them; an edit keeps the mode.
    let operator = app.client_as("olive", &[app::domain::Role::Operator]).await;
    let enforce = json!({ "enforced": true });
    let mut body = comparison(0.10, 30, false);
    body.as_object_mut().unwrap().extend(enforce.as_object().unwrap().clone());
    let path = app.url(&format!("/api/v1/models/m/guardrails/{observed}"));
    expect_error(operator.put(&path).json(&body).send().await.unwrap(), 403, None).await;
    body.as_object_mut().unwrap().remove("enforced");
    body["severity"] = json!("failing");
    let edited = json(operator.put(&path).json(&body).send().await.unwrap(), 200).await;
    assert_eq!(edited["enforced"], false);
    assert_eq!(production_health(&app, 2).await, "unknown");

    // An admin enforces it: audited, health fails, and the automatic request is filed.
    body["enforced"] = json!(true);
    let enforced = json(app.client.put(&path).json(&body).send().await.unwrap(), 200).await;
    assert_eq!(enforced["enforced"], true);
    assert_eq!(production_health(&app, 2).await, "failing");
    let entries = json(app.get("/api/v1/audit?action=guardrail.enforce").await, 200).await;
    assert_eq!(entries["entries"][0]["before"]["enforced"], false);
    assert_eq!(entries["entries"][0]["after"]["enforced"], true);
    let filed = json(app.get("/api/v1/rollbacks").await, 200).await;
    assert_eq!(filed["total"], 1);
    assert_eq!(
        (filed["items"][0]["from_version"].as_i64(), filed["items"][0]["to_version"].as_i64()),
        (Some(2), Some(1))
    );
}

async fn replay_gives_the_verdict_timeline_over_history(backend: Backend) {
    let app = v2_replaced_v1(backend).await;
    let switch = TEST_EPOCH_MS + 10 * 60_000;
    // Ten minutes as fast as v1, then ten minutes 30 % slower (a point a second).
    for (minute, factor) in [(0, 1.0), (5, 1.0), (10, 1.3), (15, 1.3)] {
        push(&app, 2, &latencies(switch + minute * 60_000, factor)).await;
    }
    let compared = rule(&app, &comparison(0.10, 30, false)).await;
    let threshold = rule(
        &app,
        &json!({ "environment": "production", "metric": "latency_ms", "aggregation": "p99",
                 "window": { "points": 60 }, "comparator": "<=", "threshold": 125 }),
    )
    .await;
    let replay = json(app.get(&format!("/api/v1/models/m/versions/2/guardrails/{compared}/replay")).await, 200).await;
    assert_eq!((replay["points"].as_i64(), replay["version"].as_i64()), (Some(1_200), Some(2)));
    assert_eq!(replay["evaluations"], 20, "one a minute over twenty minutes: {replay}");
    assert_eq!(replay["baseline"], json!({ "version": 1, "concurrent": false }));
    let outcomes: Vec<&str> =
        replay["spans"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.first(), Some(&"pass"));
    assert_eq!(outcomes.last(), Some(&"fail"), "{outcomes:?}");
    let first_failure = chrono_ms(replay["first_failure"].as_str().unwrap());
    assert!(
        first_failure > switch + 10 * 60_000 && first_failure <= switch + 15 * 60_000,
        "fails within five minutes of the slowdown: {first_failure}"
    );
    let spans = replay["spans"].as_array().unwrap();
    for pair in spans.windows(2) {
        assert_eq!(pair[0]["to"], pair[1]["from"], "spans follow each other");
    }

    // A threshold rule replays too: p99 of the last 60 points passes until the slowdown.
    let replay = json(app.get(&format!("/api/v1/models/m/versions/2/guardrails/{threshold}/replay")).await, 200).await;
    let outcomes: Vec<&str> =
        replay["spans"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["pass", "fail"]);
    assert_eq!(chrono_ms(replay["first_failure"].as_str().unwrap()), switch + 11 * 60_000);
    assert!(replay["baseline"].is_null());
    expect_error(app.get("/api/v1/models/m/versions/2/guardrails/999/replay").await, 404, None).await;
    expect_error(app.get("/api/v1/models/m/versions/9/guardrails/1/replay").await, 404, None).await;
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn chrono_ms(text: &str) -> i64 {
    server::clock::parse_rfc3339("time", text).unwrap_or_else(|_| panic!("{text} is not RFC 3339"))
}
