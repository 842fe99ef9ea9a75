//! Metrics benchmark for a running Modelgate server (see `scripts/bench.sh`): ingest throughput
//! in 1,000-point batches with and without guardrails (threshold and comparison rules),
//! downsampling a series of a million points, replaying rules over a million points, and the
//! server-rendered version page with five charts.
//!
//! Usage: `metricsbench BASE_URL --token API_TOKEN [--seconds S] [--clients C] [--series-points N]`

mod harness;

use std::sync::Arc;
use std::time::Instant;

use harness::{Sample, print_table, run};
use modelgate_tests::{arg, number_arg};
use reqwest::Client;
use serde_json::{Value, json};

/// A batch of `n` points of `keys` (taking turns), serialized once and sent many times.
fn batch(n: usize, keys: &[&str], live: bool) -> axum::body::Bytes {
    let points: Vec<Value> = (0..n)
        .map(|i| {
            let value = 100.0 + (i as f64 / 7.0).sin() * 20.0;
            if live {
                json!({ "key": keys[i % keys.len()], "value": value, "source": "live", "environment": "production" })
            } else {
                json!({ "key": keys[i % keys.len()], "value": value })
            }
        })
        .collect();
    serde_json::to_vec(&json!({ "points": points })).expect("batch").into()
}

async fn expect(response: reqwest::Result<reqwest::Response>, status: u16, what: &str) -> Value {
    let response = response.unwrap_or_else(|e| panic!("{what}: {e}"));
    let code = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(code, status, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Registers a model with `versions` versions.
async fn model(client: &Client, base: &str, name: &str, versions: usize) {
    expect(client.post(format!("{base}/api/v1/models")).json(&json!({ "name": name })).send().await, 201, name).await;
    for v in 0..versions {
        let body =
            json!({ "artifact_uri": format!("s3://bench/{name}/{v}"), "artifact_digest": format!("sha256:{v:064x}") });
        expect(client.post(format!("{base}/api/v1/models/{name}/versions")).json(&body).send().await, 201, name).await;
    }
}

/// Makes `version` live in production.
async fn deploy(client: &Client, base: &str, name: &str, version: usize) {
    let url = format!("{base}/api/v1/models/{name}/environments/production/deploy");
    expect(client.post(url).json(&json!({ "version": version })).send().await, 201, "deploy").await;
}

/// Adds a guardrail (observed: evaluated as an enforced one is).
async fn guardrail(client: &Client, base: &str, name: &str, rule: Value) -> i64 {
    let url = format!("{base}/api/v1/models/{name}/guardrails");
    expect(client.post(url).json(&rule).send().await, 201, "guardrail").await["id"].as_i64().expect("id")
}

/// A comparison rule on production's live `metric`.
fn comparison(metric: &str, window: Value, test: &str) -> Value {
    json!({ "environment": "production", "metric": metric, "window": window,
            "comparison": { "direction": "higher_is_worse", "tolerance": { "relative": 0.1 }, "test": test,
                            "min_points": 30, "confidence": 0.95 } })
}

/// Live latency points of one version, one every `every_ms` from `start`, in 1,000-point batches.
async fn timed_points(
    client: &Client,
    base: &str,
    (name, version): (&str, usize),
    (start, every_ms, n): (i64, i64, usize),
) {
    for first in (0..n).step_by(1_000) {
        let points: Vec<Value> = (first..(first + 1_000).min(n))
            .map(|i| {
                let value = 100.0 + (i as f64 / 7.0).sin() * 20.0;
                json!({ "key": "latency_ms", "value": value, "timestamp": start + i as i64 * every_ms,
                        "source": "live", "environment": "production" })
            })
            .collect();
        let url = format!("{base}/api/v1/models/{name}/versions/{version}/metrics");
        expect(client.post(url).json(&json!({ "points": points })).send().await, 201, "points").await;
    }
}

/// Where and how long a scenario posts batches.
struct Ingest<'a> {
    model: &'a str,
    /// Requests go to versions 1..=versions in turn.
    versions: usize,
    clients: usize,
    seconds: u64,
    /// Stop after this many batches instead of after `seconds`.
    count: Option<usize>,
}

/// Posts the same batch over and over.
async fn ingest(name: &str, client: &Client, base: &Arc<String>, body: axum::body::Bytes, how: Ingest<'_>) -> Sample {
    let (c, b, model, versions) = (client.clone(), base.clone(), how.model.to_string(), how.versions);
    run(name, how.clients, how.seconds, how.count, move |i| {
        let (c, b, body) = (c.clone(), b.clone(), body.clone());
        let url = format!("{b}/api/v1/models/{model}/versions/{}/metrics", i % versions + 1);
        async move {
            c.post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status() == 201)
        }
    })
    .await
}

/// GETs `path` for `seconds` from one client, reading each body in full.
async fn get(name: &str, client: &Client, base: &Arc<String>, path: String, seconds: u64) -> Sample {
    let (c, b) = (client.clone(), base.clone());
    run(name, 1, seconds, None, move |_| {
        let (c, url) = (c.clone(), format!("{b}{path}"));
        async move {
            match c.get(url).send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await
}

/// Times one comparison rule over 2 × 50,000 points, each test (target ≤ 10 ms), and over
/// 2 × 1,000 (one look of a replay).
fn comparisons() {
    use app::domain::Comparison;
    use app::domain::{ComparisonTest, Direction, Tolerance};
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};
    use server::metrics::compare::Test;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let latency = LogNormal::new(5.0, 0.6).expect("log-normal");
    println!("== a comparison rule over log-normal points (target ≤ 10 ms at 2 × 50,000)");
    for size in [50_000, 1_000] {
        let baseline: Vec<f64> = (0..size).map(|_| latency.sample(&mut rng)).collect();
        let candidate: Vec<f64> = (0..size).map(|_| latency.sample(&mut rng) * 1.05).collect();
        for test in [ComparisonTest::MannWhitney, ComparisonTest::Sequential] {
            let rule = Test(Comparison {
                direction: Direction::HigherIsWorse,
                tolerance: Tolerance::Relative(0.10),
                test,
                min_points: 30,
                confidence: 0.95,
            });
            let mut times: Vec<f64> = (0..20)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(rule.compare(&baseline, &candidate));
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let evidence = rule.compare(&baseline, &candidate);
            println!(
                "{:<44} p50 {:>6.2} ms  max {:>6.2} ms  ({:?}: shift {:+.4} [{:+.4}, {:+.4}])",
                format!("{test:?}, 2 × {size}"),
                times[10],
                times[19],
                evidence.outcome,
                evidence.shift.unwrap_or(f64::NAN),
                evidence.low.unwrap_or(f64::NAN),
                evidence.high.unwrap_or(f64::NAN)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let base = Arc::new(std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:3000".into()));
    let token = arg("--token").expect("--token API_TOKEN is required");
    let seconds = number_arg("--seconds", 5) as u64;
    let clients = number_arg("--clients", 4);
    let series_points = number_arg("--series-points", 1_000_000);
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("token header"));
    let client = Client::builder().pool_max_idle_per_host(64).default_headers(auth).build().expect("client");
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let (plain, guarded, series, ssr) =
        (format!("ingest-{stamp}"), format!("guarded-{stamp}"), format!("series-{stamp}"), format!("ssr-{stamp}"));
    let (compared, replayed) = (format!("compared-{stamp}"), format!("replayed-{stamp}"));
    comparisons();
    println!("metrics benchmark on {base}: {clients} ingest clients, {seconds} s per scenario");
    model(&client, &base, &plain, clients).await;
    model(&client, &base, &guarded, clients).await;
    for rule in [
        json!({ "environment": "production", "metric": "latency_ms", "aggregation": "p99", "window": { "points": 100 }, "comparator": "<=", "threshold": 250 }),
        json!({ "environment": "production", "metric": "error_rate", "aggregation": "mean", "window": { "points": 50 }, "comparator": "<=", "threshold": 0.02 }),
        json!({ "environment": "production", "metric": "latency_ms", "aggregation": "max", "window": { "minutes": 5 }, "comparator": "<=", "threshold": 1000 }),
    ] {
        expect(
            client.post(format!("{base}/api/v1/models/{guarded}/guardrails")).json(&rule).send().await,
            201,
            "guardrail",
        )
        .await;
    }

    // Versions 1..=clients serve beside the live one (clients + 1), which has points to compare with.
    model(&client, &base, &compared, clients + 1).await;
    deploy(&client, &base, &compared, clients + 1).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    timed_points(&client, &base, (&compared, clients + 1), (now - 3_000_000, 1_000, 3_000)).await;
    for rule in [
        comparison("latency_ms", json!({ "points": 1000 }), "sequential"),
        comparison("latency_ms", json!({ "minutes": 5 }), "sequential"),
        comparison("latency_ms", json!({ "points": 500 }), "mann_whitney"),
    ] {
        guardrail(&client, &base, &compared, rule).await;
    }

    let live = batch(1_000, &["latency_ms", "error_rate"], true);
    let timed = |model, clients| Ingest { model, versions: clients, clients, seconds, count: None };
    let mut samples = vec![
        ingest("ingest 1,000-point batches", &client, &base, live.clone(), timed(&plain, clients)).await,
        ingest("ingest, 3 guardrails evaluated", &client, &base, live.clone(), timed(&guarded, clients)).await,
        ingest("ingest 1,000-point batches", &client, &base, live.clone(), timed(&plain, 1)).await,
        ingest("ingest, 3 guardrails evaluated", &client, &base, live.clone(), timed(&guarded, 1)).await,
        ingest("ingest, 3 comparison rules evaluated", &client, &base, live.clone(), timed(&compared, clients)).await,
        ingest("ingest, 3 comparison rules evaluated", &client, &base, live, timed(&compared, 1)).await,
    ];
    let throughput: Vec<f64> =
        samples.iter().map(|s| s.micros.len() as f64 * 1_000.0 / s.elapsed.as_secs_f64()).collect();

    // One series of a million points, then downsampled reads of it.
    model(&client, &base, &series, 1).await;
    let started = Instant::now();
    let how = Ingest { model: &series, versions: 1, clients: 1, seconds: 0, count: Some(series_points / 1_000) };
    let fill = ingest("fill one series, 1,000 per batch", &client, &base, batch(1_000, &["loss"], false), how).await;
    let fill_rate = series_points as f64 / started.elapsed().as_secs_f64();
    samples.push(fill);
    let metric = format!("/api/v1/models/{series}/versions/1/metrics/loss");
    samples
        .push(get("series of 1e6 → 1,000 points", &client, &base, format!("{metric}?max_points=1000"), seconds).await);
    let (from, to) = (series_points as i64 * 4 / 10, series_points as i64 / 2);
    samples.push(
        get(
            "10% zoom of it → 1,000 points",
            &client,
            &base,
            format!("{metric}?max_points=1000&from={from}&to={to}"),
            seconds,
        )
        .await,
    );

    // Replay over a version's 10^6 live points (a week, one every 0.6 s), after the 10^5 of the
    // version it replaced: a threshold rule and the two comparison tests.
    model(&client, &base, &replayed, 2).await;
    deploy(&client, &base, &replayed, 1).await;
    let week = 7 * 24 * 3_600_000;
    timed_points(&client, &base, (&replayed, 1), (now - week - 3_600_000, 36, 100_000)).await;
    deploy(&client, &base, &replayed, 2).await;
    timed_points(&client, &base, (&replayed, 2), (now - week, 600, series_points)).await;
    for (name, rule) in [
        (
            "replay p99 threshold over 1e6 points",
            json!({ "environment": "production", "metric": "latency_ms", "aggregation": "p99",
                    "window": { "points": 100 }, "comparator": "<=", "threshold": 250 }),
        ),
        ("replay sequential over 1e6 points", comparison("latency_ms", json!({ "minutes": 60 }), "sequential")),
        ("replay Mann–Whitney over 1e6 points", comparison("latency_ms", json!({ "points": 1000 }), "mann_whitney")),
    ] {
        let id = guardrail(&client, &base, &replayed, rule).await;
        let path = format!("/api/v1/models/{replayed}/versions/2/guardrails/{id}/replay");
        samples.push(get(name, &client, &base, path, seconds).await);
    }

    // The version page with five charts of 20,000 points each.
    model(&client, &base, &ssr, 2).await;
    let five = batch(10_000, &["accuracy", "loss", "latency_ms", "auc", "recall"], false);
    for version in [1, 2] {
        for _ in 0..10 {
            let url = format!("{base}/api/v1/models/{ssr}/versions/{version}/metrics");
            expect(
                client.post(url).header("content-type", "application/json").body(five.clone()).send().await,
                201,
                "five keys",
            )
            .await;
        }
    }
    samples.push(get("SSR version page, 5 charts", &client, &base, format!("/models/{ssr}/versions/1"), seconds).await);
    samples.push(
        get("SSR, 5 charts compared with v2", &client, &base, format!("/models/{ssr}/versions/1?compare=2"), seconds)
            .await,
    );

    println!();
    print_table(&mut samples);
    println!();
    println!(
        "ingest points/s: {} clients {:.0} plain, {:.0} with guardrails ({:+.1}%)",
        clients,
        throughput[0],
        throughput[1],
        (throughput[1] / throughput[0] - 1.0) * 100.0
    );
    println!(
        "ingest points/s: 1 client {:.0} plain, {:.0} with guardrails ({:+.1}%)",
        throughput[2],
        throughput[3],
        (throughput[3] / throughput[2] - 1.0) * 100.0
    );
    println!(
        "ingest points/s: {} clients {:.0} plain, {:.0} with comparison rules ({:+.1}%); 1 client {:.0} ({:+.1}%)",
        clients,
        throughput[0],
        throughput[4],
        (throughput[4] / throughput[0] - 1.0) * 100.0,
        throughput[5],
        (throughput[5] / throughput[2] - 1.0) * 100.0
    );
    println!("filling one series: {fill_rate:.0} points/s ({series_points} points)");
    let errors: usize = samples.iter().map(|s| s.errors).sum();
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}
