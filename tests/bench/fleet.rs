//! Serving-fleet benchmark against two running replicas on one PostgreSQL database (see
//! `scripts/bench-fleet.sh`): N simulated agents long-poll their assignment (half on each
//! replica) and report what they serve. Measured: after a rollback is approved on replica A, the
//! time until each agent holds the new assignment and until every agent reported it; with the
//! long polls idle, the replicas' CPU and memory per waiting agent; and the database space the
//! agents' heartbeats take as they go on.
//!
//! Usage: `fleetbench --servers A,B --pids PID_A,PID_B --database-url URL --token OPERATOR
//! --review-token REVIEWER --agent-token AGENT [--agents N] [--idle-seconds S] [--heartbeat-rounds R]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use modelgate_tests::{arg, bearer_client, number_arg};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

const PAIR: &str = "/api/v1/models/fleet/environments/production";

fn report(counter: i64, version: Option<i64>, digest: Option<&str>, state: &str) -> Value {
    json!({ "group": "bench", "counter": counter, "version": version, "digest": digest, "state": state, "heartbeat_seconds": 300 })
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> Value {
    let response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// CPU ticks (user + system) and resident kilobytes of a process.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap();
    (ticks, rss.parse().unwrap())
}

/// One simulated agent: reports, long-polls, reports each new assignment ready; sends the time it
/// received each counter to `received`.
async fn agent(
    client: Client,
    base: String,
    i: usize,
    received: Arc<Mutex<Vec<(usize, i64, Instant)>>>,
    stop: watch::Receiver<bool>,
) {
    let me = format!("{base}{PAIR}/agents/agent-{i:04}");
    send(client.put(&me).json(&report(0, None, None, "downloading")), "first report").await;
    let mut held = 0;
    while !*stop.borrow() {
        let poll = client.get(format!("{base}{PAIR}/assignment?after={held}&wait=30")).send().await;
        let Ok(response) = poll else { continue };
        if response.status() != 200 {
            continue;
        }
        let at = Instant::now();
        let signed: Value = response.json().await.unwrap();
        let assignment: Value = serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap();
        held = assignment["counter"].as_i64().unwrap();
        received.lock().await.push((i, held, at));
        let ready = report(held, assignment["version"].as_i64(), assignment["digest"].as_str(), "ready");
        send(client.put(&me).json(&ready), "ready report").await;
    }
}

async fn fleet_state(client: &Client, base: &str) -> Value {
    send(client.get(format!("{base}{PAIR}/fleet")), "fleet").await
}

#[tokio::main]
async fn main() {
    let servers: Vec<String> = arg("--servers").expect("--servers A,B").split(',').map(String::from).collect();
    let pids: Vec<u32> = arg("--pids").expect("--pids").split(',').map(|p| p.parse().unwrap()).collect();
    let database_url = arg("--database-url").expect("--database-url");
    let agents = number_arg("--agents", 1000);
    let idle_seconds = number_arg("--idle-seconds", 20) as u64;
    let rounds = number_arg("--heartbeat-rounds", 360);
    let operator = bearer_client(&arg("--token").expect("--token"));
    let reviewer = bearer_client(&arg("--review-token").expect("--review-token"));
    let agent_token = arg("--agent-token").expect("--agent-token");
    let a = servers[0].clone();

    // A model with two versions, v2 live in production.
    send(operator.post(format!("{a}/api/v1/models")).json(&json!({ "name": "fleet" })), "model").await;
    for v in 1..=2 {
        let body =
            json!({ "artifact_uri": format!("s3://bench/fleet/{v}"), "artifact_digest": format!("sha256:{v:064x}") });
        send(operator.post(format!("{a}/api/v1/models/fleet/versions")).json(&body), "version").await;
        send(operator.post(format!("{a}{PAIR}/deploy")).json(&json!({ "version": v })), "deploy").await;
    }
    let before: Vec<(u64, u64)> = pids.iter().map(|p| usage(*p)).collect();

    // The agents, alternating between the replicas, join in two halves, each until all serve v2:
    // the memory the second half adds is what a waiting agent costs (the first half's includes the
    // servers' warm-up: pool connections, caches).
    let client = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, format!("Bearer {agent_token}").parse().unwrap())].into_iter().collect(),
        )
        .pool_max_idle_per_host(agents)
        .build()
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let mut halfway = Vec::new();
    for half in [0..agents / 2, agents / 2..agents] {
        let joined = half.end;
        for i in half {
            let base = servers[i % servers.len()].clone();
            tokio::spawn(agent(client.clone(), base, i, received.clone(), stop.clone()));
        }
        loop {
            let fleet = fleet_state(&operator, &a).await;
            if fleet["rollout"]["state"] == "converged" && fleet["agents"].as_array().map_or(0, Vec::len) == joined {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the fleet did not converge on v2: {}",
                fleet["rollout"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        if joined < agents {
            halfway = pids.iter().map(|p| usage(*p)).collect();
        }
    }
    println!("{agents} agents joined and converged on v2 in {:.2} s", started.elapsed().as_secs_f64());

    // Idle: every agent waits in a long poll.
    let idle_start: Vec<(u64, u64)> = pids.iter().map(|p| usage(*p)).collect();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_end: Vec<(u64, u64)> = pids.iter().map(|p| usage(*p)).collect();
    let ticks_per_second = 100.0; // USER_HZ on Linux
    for (i, server) in servers.iter().enumerate() {
        let cpu = (idle_end[i].0 - idle_start[i].0) as f64 / ticks_per_second / idle_seconds as f64 * 100.0;
        let per_agent_kib = (idle_end[i].1 as f64 - halfway[i].1 as f64) / (agents as f64 / 2.0 / servers.len() as f64);
        println!(
            "idle, {} waiting long polls on {server}: CPU {cpu:.2} % of a core; RSS {} KiB before the agents, {} with \
             half, {} with all ({per_agent_kib:.1} KiB per waiting agent)",
            agents / servers.len(),
            before[i].1,
            halfway[i].1,
            idle_end[i].1
        );
    }

    // The rollback: requested and approved on A; clock from the approval's sending.
    let request = json!({ "to_version": 1, "reason": "bench" });
    let request = send(operator.post(format!("{a}{PAIR}/rollbacks")).json(&request), "request").await;
    let approved = Instant::now();
    let approve = format!("{a}/api/v1/rollbacks/{}/approve", request["id"]);
    let outcome = send(reviewer.post(approve).json(&json!({})), "approve").await;
    let counter = outcome["revision"].as_i64().expect("executed");
    let converged = loop {
        let fleet = fleet_state(&operator, &a).await;
        if fleet["rollout"]["revision"] == counter && fleet["rollout"]["state"] == "converged" {
            break approved.elapsed();
        }
        assert!(approved.elapsed() < Duration::from_secs(60), "the rollback did not converge: {}", fleet["rollout"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut got: Vec<u64> = received
        .lock()
        .await
        .iter()
        .filter(|(_, c, _)| *c == counter)
        .map(|(_, _, at)| at.duration_since(approved).as_micros() as u64)
        .collect();
    assert_eq!(got.len(), agents, "every agent received the rollback's assignment");
    got.sort_unstable();
    let percentile = |p: f64| got[((got.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    println!(
        "rollback approved on A: every agent held the new assignment — p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms; \
         all {agents} reported it (rollout converged, seen at A) after {:.0} ms",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        converged.as_secs_f64() * 1000.0
    );

    // Heartbeats: every agent re-reports what it serves, `rounds` times, 64 at a time, in six
    // batches; the tables' size after each (autovacuum left to itself), and after a VACUUM.
    let _ = stop_tx.send(true);
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    let size = |db: sqlx::PgPool, vacuum: bool| async move {
        if vacuum {
            sqlx::query("VACUUM fleet_agents, fleet_transitions").execute(&db).await.unwrap();
        }
        let bytes: i64 = sqlx::query_scalar(
            "SELECT pg_total_relation_size('fleet_agents') + pg_total_relation_size('fleet_transitions')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        let transitions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM fleet_transitions").fetch_one(&db).await.unwrap();
        (bytes as f64 / 1048576.0, transitions)
    };
    let (mib, transitions) = size(db.clone(), false).await;
    println!("before heartbeats: fleet tables {mib:.2} MiB, {transitions} transitions");
    let batches = 6;
    let heartbeats = Instant::now();
    for batch in 1..=batches {
        let next = Arc::new(AtomicUsize::new(0));
        let total = rounds / batches * agents;
        let workers: Vec<_> = (0..64)
            .map(|_| {
                let (client, next, servers) = (client.clone(), next.clone(), servers.clone());
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            return;
                        }
                        let i = n % agents;
                        let url = format!("{}{PAIR}/agents/agent-{i:04}", servers[i % servers.len()]);
                        let body = report(counter, Some(1), Some(&format!("sha256:{:064x}", 1)), "ready");
                        send(client.put(url).json(&body), "heartbeat").await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let (mib, transitions) = size(db.clone(), false).await;
        println!(
            "after {} heartbeat rounds: fleet tables {mib:.2} MiB, {transitions} transitions",
            batch * rounds / batches
        );
    }
    let seconds = heartbeats.elapsed().as_secs_f64();
    let (mib, transitions) = size(db, true).await;
    println!(
        "{} reports in {seconds:.0} s ({:.0} reports/s); after VACUUM: fleet tables {mib:.2} MiB, {transitions} transitions",
        rounds / batches * batches * agents,
        (rounds / batches * batches * agents) as f64 / seconds
    );
}
