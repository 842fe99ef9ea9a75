//! The fleet as real processes: twenty `modelgate agent` processes against two `modelgate serve`
//! replicas on one PostgreSQL database — a rollback approved on one replica converges every agent,
//! including those polling the other; killing that other replica mid-rollback moves its agents
//! over; a killed agent turns lost and leaves the next change partially converged until it returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use modelgate_tests::{Backend, PASSWORD, ServerProcess, TestDb, bearer_client, json, modelgate, run_modelgate};
use reqwest::Client;
use serde_json::{Value, json};
use server::artifacts::tree::listing_digest;
use sha2::{Digest, Sha256};

const AGENTS: usize = 20;
const FLEET: &str = "/api/v1/models/m/environments/production/fleet";

/// A version's files in a directory of their own, and their digest.
fn version_dir(root: &Path, n: i64) -> (PathBuf, String) {
    let dir = root.join(format!("v{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = format!("weights of version {n}");
    std::fs::write(dir.join("model.bin"), &weights).unwrap();
    let sha = hex::encode(Sha256::digest(weights.as_bytes()));
    (dir, listing_digest([("model.bin", sha.as_str())]))
}

fn token(db: &str, user: &str, role: &str, extra: &[&str]) -> String {
    run_modelgate(&["user", "add", user, "--role", role], db, PASSWORD);
    let args = [&["token", "create", "--user", user, "--name", "t", "--role", role][..], extra].concat();
    run_modelgate(&args, db, "").trim().to_string()
}

fn start_agent(i: usize, servers: &[&str], token: &str, key: &str, root: &Path) -> Child {
    modelgate()
        .args(["agent", "--model", "m", "--environment", "production", "--heartbeat-secs", "5", "--wait-secs", "30"])
        .args([
            "--instance",
            &format!("agent-{i:02}"),
            "--group",
            if i.is_multiple_of(2) { "eu-west" } else { "us-east" },
        ])
        .args(["--server", &servers.join(","), "--token", token, "--public-key", key])
        .arg("--dir")
        .arg(root.join(format!("agent-{i:02}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start modelgate agent")
}

/// Polls the fleet on `base` until `done` holds (or fails after `limit`).
async fn until(client: &Client, base: &str, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let fleet = json(client.get(format!("{base}{FLEET}")).send().await.unwrap(), 200).await;
        if done(&fleet) {
            return fleet;
        }
        assert!(started.elapsed() < limit, "{what} not within {limit:?}: {fleet}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn serving(fleet: &Value, version: i64) -> usize {
    fleet["agents"].as_array().unwrap().iter().filter(|a| a["state"] == "ready" && a["version"] == version).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_converge_through_a_replica_crash_and_a_lost_agent() {
    let db = TestDb::create(Backend::Postgres).await;
    run_modelgate(&["migrate"], &db.url, "");
    let ops = bearer_client(&token(&db.url, "ops", "operator", &[]));
    let reviewer = bearer_client(&token(&db.url, "rev", "reviewer", &[]));
    let admin = bearer_client(&token(&db.url, "root", "admin", &[]));
    let agent_token = token(&db.url, "fleet", "agent", &["--environment", "production"]);
    let a = ServerProcess::start(&db.url, &[]).await;
    let b = ServerProcess::start(&db.url, &[]).await;
    let (base_a, base_b) = (a.base.clone(), b.base.clone());

    let root = std::env::temp_dir().join(format!("modelgate-fleet-{}", uuid::Uuid::new_v4()));
    json(ops.post(format!("{base_a}/api/v1/models")).json(&json!({ "name": "m" })).send().await.unwrap(), 201).await;
    for n in 1..=2 {
        let (dir, digest) = version_dir(&root, n);
        let body = json!({ "artifact_uri": format!("file://{}", dir.display()), "artifact_digest": digest });
        json(ops.post(format!("{base_a}/api/v1/models/m/versions")).json(&body).send().await.unwrap(), 201).await;
    }
    let policy = json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "convergence_deadline_seconds": 10 });
    let url = format!("{base_a}/api/v1/environments/production/policy");
    json(admin.put(url).json(&policy).send().await.unwrap(), 200).await;
    let deploy = |version: i64| {
        let body = json!({ "version": version, "reason": "release" });
        ops.post(format!("{base_a}/api/v1/models/m/environments/production/deploy")).json(&body).send()
    };
    json(deploy(1).await.unwrap(), 201).await;
    json(deploy(2).await.unwrap(), 201).await;

    let key = json(reqwest::get(format!("{base_a}/api/v1/fleet/public-key")).await.unwrap(), 200).await;
    let key = key["public_key"].as_str().unwrap().to_string();
    // Half the agents poll B first, half A.
    let order = |i: usize| {
        if i.is_multiple_of(2) {
            vec![base_b.as_str(), base_a.as_str()]
        } else {
            vec![base_a.as_str(), base_b.as_str()]
        }
    };
    let mut agents: Vec<Child> = (0..AGENTS).map(|i| start_agent(i, &order(i), &agent_token, &key, &root)).collect();
    // The last report decides the rollout, possibly a moment after its row is visible.
    let fleet = until(&ops, &base_a, Duration::from_secs(60), "20 agents on v2, converged", |f| {
        serving(f, 2) == AGENTS && f["rollout"]["state"] == "converged"
    })
    .await;
    assert_eq!(fleet["groups"].as_array().unwrap().len(), 2);

    // A rollback requested and approved on A; B is killed right after the approval.
    let request = json!({ "to_version": 1, "reason": "v2 misbehaves" });
    let url = format!("{base_a}/api/v1/models/m/environments/production/rollbacks");
    let request = json(ops.post(url).json(&request).send().await.unwrap(), 201).await;
    let approve = format!("{base_a}/api/v1/rollbacks/{}/approve", request["id"]);
    let approved_at = Instant::now();
    json(reviewer.post(approve).json(&json!({ "comment": "ok" })).send().await.unwrap(), 200).await;
    drop(b); // kill -9
    let fleet = until(&ops, &base_a, Duration::from_secs(60), "the rollback converged", |f| {
        f["rollout"]["version"] == 1 && f["rollout"]["state"] == "converged"
    })
    .await;
    assert_eq!(serving(&fleet, 1), AGENTS, "{fleet}");
    eprintln!("rollback converged on {AGENTS} agents in {:?} with replica B killed", approved_at.elapsed());
    for agent in &fleet["agents"].as_array().unwrap()[..] {
        let dir = root.join(agent["instance"].as_str().unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("current/model.bin")).unwrap(), "weights of version 1");
    }

    // An agent killed: lost after three missed heartbeats; the next change ends partially converged.
    agents[7].kill().unwrap();
    agents[7].wait().unwrap();
    until(&ops, &base_a, Duration::from_secs(30), "agent-07 lost", |f| {
        f["agents"].as_array().unwrap().iter().any(|a| a["instance"] == "agent-07" && a["state"] == "lost")
    })
    .await;
    json(deploy(2).await.unwrap(), 201).await;
    let fleet = until(&ops, &base_a, Duration::from_secs(40), "partially converged", |f| {
        f["rollout"]["state"] == "partially_converged"
    })
    .await;
    assert_eq!(fleet["rollout"]["stragglers"], json!(["agent-07"]), "{fleet}");
    assert_eq!(serving(&fleet, 2), AGENTS - 1);
    // It comes back (same name, same directory) and the change converges.
    agents[7] = start_agent(7, &[base_a.as_str()], &agent_token, &key, &root);
    let fleet =
        until(&ops, &base_a, Duration::from_secs(30), "converged again", |f| f["rollout"]["state"] == "converged")
            .await;
    assert_eq!(serving(&fleet, 2), AGENTS);
    let history =
        json(ops.get(format!("{base_a}/api/v1/models/m/environments/production/history")).send().await.unwrap(), 200)
            .await;
    assert!(history["items"][0]["converged_at"].is_string(), "{history}");

    for mut agent in agents {
        let _ = agent.kill();
        let _ = agent.wait();
    }
    drop(a);
    let _ = std::fs::remove_dir_all(root);
}
