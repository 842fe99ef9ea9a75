//! Guarded-rollback benchmark for a running Modelgate server (see `scripts/bench.sh`): the time from
//! the approving request's response to an SSE subscriber receiving the live-version change, and
//! request + approve throughput from 8 clients, each rolling back its own model.
//!
//! Usage: `rollbackbench BASE_URL --token OPERATOR_TOKEN --review-token REVIEWER_TOKEN
//! [--rollbacks N] [--seconds S] [--clients C]`

mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Sample, print_table, run};
use modelgate_tests::{EventStream, bearer_client};
use modelgate_tests::{arg, number_arg};
use reqwest::Client;
use serde_json::{Value, json};

/// Posts `body` and returns the JSON answer if the status is `status`.
async fn post(client: &Client, url: String, body: Value, status: u16) -> Option<Value> {
    let response = client.post(url).json(&body).send().await.ok()?;
    if response.status().as_u16() != status {
        eprintln!("{} {}", response.status(), response.text().await.unwrap_or_default());
        return None;
    }
    response.json().await.ok()
}

/// A model with two versions, v1 then v2 live in production.
async fn model(client: &Client, base: &str, name: &str) {
    post(client, format!("{base}/api/v1/models"), json!({ "name": name }), 201).await.expect("model");
    for v in 1..=2 {
        let body =
            json!({ "artifact_uri": format!("s3://bench/{name}/{v}"), "artifact_digest": format!("sha256:{v:064x}") });
        post(client, format!("{base}/api/v1/models/{name}/versions"), body, 201).await.expect("version");
        let deploy = format!("{base}/api/v1/models/{name}/environments/production/deploy");
        post(client, deploy, json!({ "version": v }), 201).await.expect("deploy");
    }
}

/// Files a rollback of `model` to `to` and approves it; returns the request id when it executed.
async fn roll_back(operator: &Client, reviewer: &Client, base: &str, model: &str, to: i64) -> Option<i64> {
    let url = format!("{base}/api/v1/models/{model}/environments/production/rollbacks");
    let request = post(operator, url, json!({ "to_version": to, "reason": "bench" }), 201).await?;
    let id = request["id"].as_i64()?;
    let approved = post(reviewer, format!("{base}/api/v1/rollbacks/{id}/approve"), json!({}), 200).await?;
    (approved["status"] == "executed").then_some(id)
}

#[tokio::main]
async fn main() {
    let base = std::env::args().nth(1).expect("usage: rollbackbench BASE_URL --token T --review-token R");
    let operator = bearer_client(&arg("--token").expect("--token"));
    let reviewer = bearer_client(&arg("--review-token").expect("--review-token"));
    let rollbacks = number_arg("--rollbacks", 300);
    let seconds = number_arg("--seconds", 10) as u64;
    let clients = number_arg("--clients", 8);
    let run_id = std::process::id();

    // Approve → SSE: a subscriber notes when each rollback's change arrives.
    let watched = format!("bench-sse-{run_id}");
    model(&operator, &base, &watched).await;
    let arrivals: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut stream =
        EventStream::open(operator.get(format!("{base}/api/v1/events?model={watched}&types=deployment"))).await;
    let listener = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            loop {
                let event = stream.next("deployment").await;
                if let Some(request) = event.data["deployment"]["request"].as_i64() {
                    arrivals.lock().unwrap().insert(request, Instant::now());
                }
            }
        })
    };
    let mut latencies = Vec::with_capacity(rollbacks);
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..rollbacks {
        let to = if i % 2 == 0 { 1 } else { 2 };
        let Some(id) = roll_back(&operator, &reviewer, &base, &watched, to).await else {
            errors += 1;
            continue;
        };
        let answered = Instant::now();
        let deadline = answered + Duration::from_secs(5);
        let arrived = loop {
            if let Some(at) = arrivals.lock().unwrap().get(&id).copied() {
                break Some(at);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        match arrived {
            // The event may even beat the response to the approver.
            Some(at) => latencies.push(at.saturating_duration_since(answered).as_micros() as u64),
            None => errors += 1,
        }
    }
    listener.abort();
    let sse = Sample {
        name: "approve response → SSE event".into(),
        clients: 1,
        elapsed: started.elapsed(),
        micros: latencies,
        errors,
    };

    // Throughput: each client rolls its own model back and forth (request + approve).
    let models: Vec<String> = (0..clients).map(|c| format!("bench-rb-{run_id}-{c}")).collect();
    for m in &models {
        model(&operator, &base, m).await;
    }
    // One lock per model (holding its round count), so two workers never roll back one model at
    // once: the only refusals left would be real errors.
    let rounds: Arc<Vec<tokio::sync::Mutex<usize>>> =
        Arc::new((0..clients).map(|_| tokio::sync::Mutex::new(0)).collect());
    let (op, rev, base2, models) = (operator.clone(), reviewer.clone(), base.clone(), Arc::new(models));
    let mut throughput = run("request + approve (own model)", clients, seconds, None, move |i| {
        let (op, rev, base, models, rounds) = (op.clone(), rev.clone(), base2.clone(), models.clone(), rounds.clone());
        async move {
            let slot = i % models.len();
            let mut round = rounds[slot].lock().await;
            *round += 1;
            // Back and forth between v1 and v2 (v2 is live at first).
            let to = if *round % 2 == 1 { 1 } else { 2 };
            roll_back(&op, &rev, &base, &models[slot], to).await.is_some()
        }
    })
    .await;
    throughput.name = format!("{} ×2 requests", throughput.name);
    print_table(&mut [sse, throughput]);
}
