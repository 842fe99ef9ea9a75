//! MLflow-compatibility benchmark (see `scripts/bench-mlflow.sh`): the same MLflow REST requests
//! against Modelgate and against a real MLflow server, side by side, and the ratio per request.
//!
//! Usage: `mlflowbench --modelgate URL --token TOKEN [--mlflow URL] [--count N] [--runs N]` (without
//! `--mlflow`, Modelgate alone is measured; `runs/search` over `--runs` runs, default 10,000, is
//! measured on Modelgate alone)

mod harness;

use std::sync::Arc;

use harness::{Sample, print_table, run};
use modelgate_tests::{arg, bearer_client, number_arg};
use reqwest::Client;
use serde_json::{Value, json};

/// One server under test: its base URL and a client that authenticates to it.
#[derive(Clone)]
struct Target {
    name: &'static str,
    base: String,
    client: Client,
}

impl Target {
    async fn call(&self, method: reqwest::Method, endpoint: &str, body: &Value) -> Option<Value> {
        let request = modelgate_tests::mlflow_request(&self.client, &self.base, method, endpoint, body);
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            eprintln!("{} {endpoint}: {} {}", self.name, response.status(), response.text().await.unwrap_or_default());
            return None;
        }
        response.json().await.ok()
    }

    /// How many entries a listing answer holds (parsed without building them, so the client's
    /// own work stays small beside the server's).
    async fn count(&self, endpoint: &str, query: Value) -> Option<usize> {
        #[derive(serde::Deserialize)]
        struct Listing {
            #[serde(alias = "metrics", alias = "model_versions")]
            items: Vec<serde::de::IgnoredAny>,
        }
        let request = modelgate_tests::mlflow_request(&self.client, &self.base, reqwest::Method::GET, endpoint, &query);
        let bytes = request.send().await.ok()?.error_for_status().ok()?.bytes().await.ok()?;
        serde_json::from_slice::<Listing>(&bytes).ok().map(|l| l.items.len())
    }

    /// Posts a JSON body already written; true on success.
    async fn post_raw(&self, endpoint: &str, body: String) -> bool {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let request = self.client.post(url).header("content-type", "application/json").body(body);
        request.send().await.is_ok_and(|r| r.status().is_success())
    }

    async fn post(&self, endpoint: &str, body: Value) -> Option<Value> {
        self.call(reqwest::Method::POST, endpoint, &body).await
    }

    async fn get(&self, endpoint: &str, query: Value) -> Option<Value> {
        self.call(reqwest::Method::GET, endpoint, &query).await
    }

    /// A new run in the default experiment.
    async fn run(&self) -> String {
        let created = self.post("runs/create", json!({ "experiment_id": "0", "start_time": 0 })).await.expect("run");
        created["run"]["info"]["run_id"].as_str().expect("run id").to_string()
    }
}

/// The JSON body of a log-batch of 1,000 points of `key` from step `from`, written directly (the
/// client's share of the machine stays small beside the server's).
fn batch(run_id: &str, key: &str, from: usize) -> String {
    #[derive(serde::Serialize)]
    struct Point<'a> {
        key: &'a str,
        value: f64,
        timestamp: i64,
        step: usize,
    }
    #[derive(serde::Serialize)]
    struct Batch<'a> {
        run_id: &'a str,
        metrics: Vec<Point<'a>>,
    }
    let metrics = (from..from + 1000)
        .map(|i| Point { key, value: (i as f64).sin(), timestamp: 1_700_000_000_000 + i as i64, step: i })
        .collect();
    serde_json::to_string(&Batch { run_id, metrics }).expect("a batch serializes")
}

/// The shortest time a scenario is measured for, in seconds, beyond its count of requests: a
/// server a hundred times faster than the other is otherwise timed over a window of a few dozen
/// milliseconds, which one stall swings by a third. Creating models and versions runs its count
/// exactly (the version search reads that many).
const WINDOW: u64 = 3;

/// Runs every scenario against `target`; `count` requests per single-client scenario (twice that
/// for the alias scenarios), each but the creations for at least [`WINDOW`] seconds.
async fn scenarios(target: Target, prefix: &str, count: usize) -> Vec<Sample> {
    let t = Arc::new(target);
    let mut samples = Vec::new();
    let prefix = Arc::new(prefix.to_string());

    let (tt, p) = (t.clone(), prefix.clone());
    samples.push(
        run("create model", 1, 0, Some(count), move |i| {
            let (t, p) = (tt.clone(), p.clone());
            async move { t.post("registered-models/create", json!({ "name": format!("{p}-m{i}") })).await.is_some() }
        })
        .await,
    );

    let model = format!("{prefix}-v");
    t.post("registered-models/create", json!({ "name": model })).await.expect("model");
    let (tt, m) = (t.clone(), Arc::new(model.clone()));
    samples.push(
        run("create version", 1, 0, Some(count), move |i| {
            let (t, m) = (tt.clone(), m.clone());
            async move {
                let body = json!({ "name": *m, "source": format!("s3://bench/{m}/{i}") });
                t.post("model-versions/create", body).await.is_some()
            }
        })
        .await,
    );

    let run_id = Arc::new(t.run().await);
    let (tt, r) = (t.clone(), run_id.clone());
    let batches = (count / 4).max(10);
    let mut logged = run("log-batch (1,000 metrics)", 1, WINDOW, Some(batches), move |i| {
        let (t, r) = (tt.clone(), r.clone());
        async move { t.post_raw("runs/log-batch", batch(&r, "loss", i * 1000)).await }
    })
    .await;
    logged.name = "log-batch points/s (÷1000 = req/s)".into();
    samples.push(logged);

    let history_run = t.run().await;
    for from in (0..10_000).step_by(1000) {
        assert!(t.post_raw("runs/log-batch", batch(&history_run, "h", from)).await, "history points");
    }
    let (tt, r) = (t.clone(), Arc::new(history_run));
    samples.push(
        run("metric history (10,000 points)", 1, WINDOW, Some((count / 4).max(10)), move |_| {
            let (t, r) = (tt.clone(), r.clone());
            async move {
                let query = json!({ "run_id": *r, "metric_key": "h", "max_results": "25000" });
                t.count("metrics/get-history", query).await == Some(10_000)
            }
        })
        .await,
    );

    // Aliases: sets and gets alternating (the targeted figure), then each alone, to show where
    // the time goes. A set is an audited write; a get a read.
    for (clients, sets, gets) in
        [(1, true, true), (8, true, true), (8, false, true), (8, true, false), (1, false, true)]
    {
        let (tt, m) = (t.clone(), Arc::new(model.clone()));
        let versions = count.min(50);
        let what = match (sets, gets) {
            (true, true) => "alias set/get",
            (true, false) => "alias set",
            _ => "alias get",
        };
        samples.push(
            run(&format!("{what}, {clients} client(s)"), clients, WINDOW, Some(count * 2), move |i| {
                let (t, m) = (tt.clone(), m.clone());
                async move {
                    if sets && (i % 2 == 0 || !gets) {
                        let version = (1 + i % versions).to_string();
                        let body = json!({ "name": *m, "alias": format!("a{}", i % 16), "version": version });
                        t.post("registered-models/alias", body).await.is_some()
                    } else {
                        // Every alias a set wrote or will write; the first round sets them all.
                        t.get(
                            "registered-models/alias",
                            json!({ "name": *m, "alias": format!("a{}", (i / 2) % 8 * 2) }),
                        )
                        .await
                        .is_some()
                    }
                }
            })
            .await,
        );
    }

    let (tt, m) = (t.clone(), Arc::new(model.clone()));
    samples.push(
        run("get-download-uri, 1 client", 1, WINDOW, Some(count * 2), move |i| {
            let (t, m) = (tt.clone(), m.clone());
            async move {
                let query = json!({ "name": *m, "version": (1 + i % count).to_string() });
                t.get("model-versions/get-download-uri", query).await.is_some()
            }
        })
        .await,
    );

    let (tt, m) = (t.clone(), Arc::new(model));
    samples.push(
        run(&format!("version search ({count} versions)"), 1, WINDOW, Some((count / 4).max(10)), move |_| {
            let (t, m) = (tt.clone(), m.clone());
            async move {
                let query = json!({ "filter": format!("name='{m}'"), "max_results": "1000" });
                t.count("model-versions/search", query).await == Some(count)
            }
        })
        .await,
    );
    samples
}

/// `runs/search` over `runs` runs of one experiment (each with an `acc` metric and a `kind`
/// param): a metric filter keeping about half, ordered by that metric, a page of 100 and of 1,000.
async fn search_runs(target: Target, prefix: &str, runs: usize) -> Vec<Sample> {
    let t = Arc::new(target);
    let created =
        t.post("experiments/create", json!({ "name": format!("{prefix}-search") })).await.expect("experiment");
    let experiment = Arc::new(created["experiment_id"].as_str().expect("experiment id").to_string());
    let (tt, e) = (t.clone(), experiment.clone());
    run("(setup: runs with a metric)", 8, 0, Some(runs), move |i| {
        let (t, e) = (tt.clone(), e.clone());
        async move {
            let Some(run) = t.post("runs/create", json!({ "experiment_id": *e, "start_time": i })).await else {
                return false;
            };
            let id = run["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string();
            let body = json!({ "run_id": id, "params": [{ "key": "kind", "value": if i % 2 == 0 { "tree" } else { "linear" } }],
                "metrics": [{ "key": "acc", "value": ((i * 7919) % runs) as f64 / runs as f64, "timestamp": 1, "step": 0 }] });
            t.post("runs/log-batch", body).await.is_some()
        }
    })
    .await;
    let mut samples = Vec::new();
    for page in [100, 1000] {
        let (tt, e) = (t.clone(), experiment.clone());
        let name = format!("runs/search ({runs} runs, metric filter + order, page {page})");
        samples.push(
            run(&name, 1, WINDOW, Some(100), move |_| {
                let (t, e) = (tt.clone(), e.clone());
                async move {
                    let body = json!({ "experiment_ids": [*e], "filter": "metrics.acc > 0.5",
                        "order_by": ["metrics.acc DESC"], "max_results": page });
                    let found = t.post("runs/search", body).await;
                    found.is_some_and(|found| found["runs"].as_array().is_some_and(|r| r.len() == page))
                }
            })
            .await,
        );
    }
    samples
}

/// Requests (or, for log-batch, metric points) per second.
fn rate(s: &Sample) -> f64 {
    let per = if s.name.starts_with("log-batch") { 1000.0 } else { 1.0 };
    per * s.micros.len() as f64 / s.elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let modelgate = arg("--modelgate").expect("--modelgate URL");
    let token = arg("--token").expect("--token TOKEN");
    let mlflow = arg("--mlflow");
    let count = number_arg("--count", 200);
    let prefix = format!("b{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let ours = Target { name: "modelgate", base: modelgate, client: bearer_client(&token) };
    let mut mg = scenarios(ours.clone(), &prefix, count).await;
    println!("== Modelgate");
    print_table(&mut mg);
    let runs = number_arg("--runs", 10_000);
    let mut searches = search_runs(ours.clone(), &prefix, runs).await;
    println!("\n== Modelgate alone\n");
    print_table(&mut searches);
    let Some(mlflow) = mlflow else { return };
    let theirs = Target { name: "mlflow", base: mlflow, client: bearer_client("") };
    let mut ml = scenarios(theirs, &prefix, count).await;
    println!("\n== MLflow\n");
    print_table(&mut ml);
    println!("\n== ratio (Modelgate ÷ MLflow; log-batch in metric points)\n");
    println!(
        "{:<36} {:>11} {:>8} {:>8} {:>11} {:>8} {:>8} {:>7} {:>7}",
        "request", "MG per s", "p50 ms", "p99 ms", "MLflow /s", "p50 ms", "p99 ms", "ratio", "errors"
    );
    for (a, b) in mg.iter().zip(ml.iter()) {
        println!(
            "{:<36} {:>11.0} {:>8.2} {:>8.2} {:>11.0} {:>8.2} {:>8.2} {:>6.1}× {:>3}/{:<3}",
            a.name,
            rate(a),
            a.percentile(0.5),
            a.percentile(0.99),
            rate(b),
            b.percentile(0.5),
            b.percentile(0.99),
            rate(a) / rate(b),
            a.errors,
            b.errors
        );
    }
}
