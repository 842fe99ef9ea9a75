//! The serving fleet: signed assignments with counters that only go up (and in the audit chain),
//! the long poll, the narrow agent role, the reference agent's refusals and digest check, and a
//! rollout converging, going partial when an agent is lost, and converging when it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::domain::{ASSIGNMENT_KIND, Assignment, NewToken, NewUser, Role, SignedAssignment};
use modelgate_tests::{
    Backend, PASSWORD, TEST_ASSIGNMENT_KEY, TestApp, WebhookReceiver, bearer_client, digest, expect_error, json,
    on_both_backends, seed_model,
};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use server::agent::{Agent, AgentArgs, Outcome};
use server::audit::AuditActor;
use server::audit::signing::parse_public_key;
use server::clock::rfc3339;
use server::fleet::assignment::{AssignmentSigner, Refusal, verify};

on_both_backends!(
    assignment_counters_only_go_up_and_are_signed_into_the_audit_chain,
    the_long_poll_answers_as_soon_as_the_live_version_changes,
    an_agent_token_reads_and_reports_only_in_its_environments,
    the_agent_refuses_tampered_expired_and_replayed_assignments_and_never_serves_a_bad_digest,
    a_rollout_converges_goes_partial_while_an_agent_is_lost_and_converges_when_it_returns
);

const STAGING: &str = "/api/v1/models/m/environments/staging";

async fn deploy(app: &TestApp, version: i64) -> Value {
    json(app.post(&format!("{STAGING}/deploy"), &json!({ "version": version, "reason": "r" })).await, 201).await
}

async fn roll_back(app: &TestApp, version: i64) {
    json(app.post(&format!("{STAGING}/rollbacks"), &json!({ "to_version": version, "reason": "bad" })).await, 201)
        .await;
}

fn keys(app_key: &Value) -> Vec<ed25519_dalek::VerifyingKey> {
    vec![parse_public_key(app_key["public_key"].as_str().unwrap()).unwrap()]
}

fn parsed(signed: &Value) -> (SignedAssignment, Assignment) {
    let signed: SignedAssignment = serde_json::from_value(signed.clone()).unwrap();
    let assignment = serde_json::from_str(&signed.payload).unwrap();
    (signed, assignment)
}

/// A user holding only the agent role, with a token for `environments`.
async fn agent_token(app: &TestApp, username: &str, environments: &[&str]) -> String {
    let user = NewUser {
        username: username.into(),
        display_name: username.into(),
        password: PASSWORD.into(),
        roles: vec![Role::Agent],
    };
    app.store.bootstrap_user(AuditActor::system("tests"), user).await.unwrap();
    let input = NewToken {
        name: "agent".into(),
        roles: vec![Role::Agent],
        environments: environments.iter().map(|e| e.to_string()).collect(),
        ..NewToken::default()
    };
    app.store.bootstrap_token(username, input).await.unwrap().token
}

async fn assignment_counters_only_go_up_and_are_signed_into_the_audit_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    let key = json(app.anonymous.get(app.url("/api/v1/fleet/public-key")).send().await.unwrap(), 200).await;
    let keys = keys(&key);
    let mut counters = Vec::new();
    for step in 0..4 {
        match step {
            0 => drop(deploy(&app, 1).await),
            1 => drop(deploy(&app, 2).await),
            2 => roll_back(&app, 1).await,
            _ => drop(deploy(&app, 3).await),
        }
        let signed = json(app.get(&format!("{STAGING}/assignment?wait=0")).await, 200).await;
        let (signed, assignment) = parsed(&signed);
        let checked =
            verify(&signed, &keys, "m", "staging", 0, app.clock.now_ms()).expect("signed by the published key");
        assert_eq!(checked, assignment);
        assert_eq!(assignment.kind, ASSIGNMENT_KIND);
        assert_eq!(assignment.digest.as_deref(), Some(digest(assignment.version as u8).as_str()));
        counters.push((assignment.counter, assignment.version));
        // The live-version endpoint answers the same signed statement.
        let live = json(app.get(&format!("{STAGING}?signed=true")).await, 200).await;
        assert_eq!(parsed(&live).1.counter, assignment.counter);
    }
    assert_eq!(counters, [(1, 1), (2, 2), (3, 1), (4, 3)], "a rollback to an older version gets a higher counter");

    // Each change's audit entry holds the signed assignment that published it.
    let entries = json(app.get("/api/v1/audit?model=m&limit=50").await, 200).await;
    let mut signed_counters: Vec<i64> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("deployment."))
        .map(|e| {
            let (signed, assignment) = parsed(&e["after"]["assignment"]);
            assert_eq!(e["after"]["revision"], assignment.counter);
            verify(&signed, &keys, "m", "staging", 0, app.clock.now_ms()).expect("the audited bytes verify");
            assignment.counter
        })
        .collect();
    signed_counters.sort();
    assert_eq!(signed_counters, [1, 2, 3, 4]);
    // Nothing live: no assignment, and the long poll ends with 304.
    let response = app.get("/api/v1/models/m/environments/production/assignment?wait=0").await;
    assert_eq!(response.status(), 304);
    app.stop().await;
}

async fn the_long_poll_answers_as_soon_as_the_live_version_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    deploy(&app, 1).await;
    let started = Instant::now();
    let response = app.get(&format!("{STAGING}/assignment?after=1&wait=1")).await;
    assert_eq!(response.status(), 304, "no change within the wait");
    assert!(started.elapsed() >= Duration::from_millis(900), "held for the wait: {:?}", started.elapsed());

    let poll = app.client.get(app.url(&format!("{STAGING}/assignment?after=1&wait=30"))).send();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    deploy(&app, 2).await;
    let answer = json(poll.await.unwrap().unwrap(), 200).await;
    assert!(started.elapsed() < Duration::from_secs(2), "answered at once: {:?}", started.elapsed());
    assert_eq!(parsed(&answer).1.counter, 2);
    let answered = app.get(&format!("{STAGING}/assignment?after=1")).await;
    assert_eq!(answered.status(), 200, "a counter already above `after` is answered without waiting");
    expect_error(app.get(&format!("{STAGING}/assignment?wait=31")).await, 422, Some("wait")).await;
    app.stop().await;
}

async fn an_agent_token_reads_and_reports_only_in_its_environments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    deploy(&app, 1).await;
    // An agent token names its environments and holds the agent role alone.
    for (body, field) in [
        (json!({ "name": "a", "roles": ["agent"] }), "environments"),
        (json!({ "name": "a", "roles": ["agent", "viewer"], "environments": ["staging"] }), "roles"),
        (json!({ "name": "a", "roles": ["operator"], "environments": ["staging"] }), "environments"),
    ] {
        expect_error(app.post("/api/v1/tokens", &body).await, 422, Some(field)).await;
    }
    let agent = bearer_client(&agent_token(&app, "fleet-eu", &["staging"]).await);
    let get = |path: String| agent.get(app.url(&path)).send();
    assert_eq!(get(format!("{STAGING}/assignment?wait=0")).await.unwrap().status(), 200);
    let report = json!({ "group": "eu-west", "counter": 1, "version": 1, "digest": digest(1), "state": "ready" });
    let put = |env: &str, body: &Value| {
        agent.put(app.url(&format!("/api/v1/models/m/environments/{env}/agents/i-1"))).json(body).send()
    };
    json(put("staging", &report).await.unwrap(), 200).await;
    // Nothing else: not production, not the registry, not a deploy, not the fleet view.
    expect_error(get("/api/v1/models/m/environments/production/assignment?wait=0".into()).await.unwrap(), 403, None)
        .await;
    expect_error(put("production", &report).await.unwrap(), 403, None).await;
    expect_error(get("/api/v1/models".into()).await.unwrap(), 403, None).await;
    expect_error(get(format!("{STAGING}/fleet")).await.unwrap(), 403, None).await;
    let deploy = agent.post(app.url(&format!("{STAGING}/deploy"))).json(&json!({ "version": 2 })).send().await.unwrap();
    expect_error(deploy, 403, None).await;
    // The files of the version live in its environment, and no other.
    assert_eq!(get("/api/v1/models/m/versions/1/files".into()).await.unwrap().status(), 200);
    expect_error(get("/api/v1/models/m/versions/2/files".into()).await.unwrap(), 403, None).await;
    // Reports are checked field by field.
    for (patch, field) in [
        (json!({ "state": "lost" }), "state"),
        (json!({ "digest": null }), "digest"),
        (json!({ "state": "failed" }), "error"),
        (json!({ "heartbeat_seconds": 1 }), "heartbeat_seconds"),
        (json!({ "group": "eu west" }), "group"),
    ] {
        let mut body = report.clone();
        body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        expect_error(put("staging", &body).await.unwrap(), 422, Some(field)).await;
    }
    let fleet = json(app.get(&format!("{STAGING}/fleet")).await, 200).await;
    assert_eq!(fleet["groups"][0]["serving"], json!([{ "version": 1, "instances": 1 }]), "{fleet}");
    app.stop().await;
}

fn files_form(files: &[(&str, &[u8])]) -> Form {
    let fields = Part::text(json!({ "framework": "onnx" }).to_string()).mime_str("application/json").unwrap();
    let form = Form::new().part("version", fields);
    files
        .iter()
        .fold(form, |form, (name, data)| form.part("file", Part::bytes(data.to_vec()).file_name(name.to_string())))
}

async fn the_agent_refuses_tampered_expired_and_replayed_assignments_and_never_serves_a_bad_digest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    json(app.post("/api/v1/models", &json!({ "name": "m" })).await, 201).await;
    for weights in [&b"weights one"[..], &b"weights two"[..]] {
        let form = files_form(&[("model.onnx", weights), ("config/labels.txt", b"fraud\nok\n")]);
        json(app.client.post(app.url("/api/v1/models/m/versions")).multipart(form).send().await.unwrap(), 201).await;
    }
    // Version 3 keeps its files in a directory, under a digest they do not make.
    let outside = std::env::temp_dir().join(format!("modelgate-v3-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("model.onnx"), b"weights three").unwrap();
    let v3 = json!({ "artifact_uri": format!("file://{}", outside.display()), "artifact_digest": digest(7), "framework": "onnx" });
    json(app.post("/api/v1/models/m/versions", &v3).await, 201).await;

    let token = agent_token(&app, "fleet-eu", &["staging"]).await;
    let key = json(app.get("/api/v1/fleet/public-key").await, 200).await;
    let dir = std::env::temp_dir().join(format!("modelgate-agent-{}", uuid::Uuid::new_v4()));
    let args = AgentArgs {
        servers: vec![app.base.clone()],
        token,
        model: "m".into(),
        environment: "staging".into(),
        group: "eu-west".into(),
        instance: "i-1".into(),
        public_keys: vec![key["public_key"].as_str().unwrap().to_string()],
        dir: dir.clone(),
        reload_command: Some(format!("echo $MODELGATE_VERSION >> {}/reloads", dir.display())),
        heartbeat_secs: 10,
        wait_secs: 0,
    };
    let agent = Arc::new(Agent::new(args.clone()).unwrap().with_clock(app.clock.clone()));
    let served = || std::fs::read(dir.join("current/model.onnx")).unwrap();

    deploy(&app, 1).await;
    let first = agent.poll().await.unwrap().expect("an assignment");
    assert_eq!(agent.consider(&first).await, Outcome::Serving(1));
    assert_eq!(served(), b"weights one");
    assert_eq!(std::fs::read_to_string(dir.join("current/config/labels.txt")).unwrap(), "fraud\nok\n");
    deploy(&app, 2).await;
    let second = agent.poll().await.unwrap().expect("a newer assignment");
    assert_eq!(agent.consider(&second).await, Outcome::Serving(2));
    assert_eq!(served(), b"weights two");
    assert_eq!(std::fs::read_to_string(dir.join("reloads")).unwrap(), "1\n2\n", "the reload hook ran after each swap");
    assert_eq!(agent.poll().await.unwrap(), None, "nothing newer");

    // Tampered, replayed, expired, foreign: refused, the served version untouched.
    let tampered =
        SignedAssignment { payload: second.payload.replace("\"version\":2", "\"version\":1"), ..second.clone() };
    assert_eq!(agent.consider(&tampered).await, Outcome::Refused(Refusal::BadSignature));
    assert!(matches!(agent.consider(&first).await, Outcome::Refused(Refusal::Replayed(1, 2))));
    let signer = AssignmentSigner::load(Some(TEST_ASSIGNMENT_KEY), std::path::Path::new("/nonexistent"), 1).unwrap();
    let mut stale: Assignment = serde_json::from_str(&second.payload).unwrap();
    stale.counter = 9;
    stale.expires_at = rfc3339(app.clock.now_ms() - 1);
    assert!(matches!(agent.consider(&signer.sign(&stale)).await, Outcome::Refused(Refusal::Expired(_))));
    let foreign =
        AssignmentSigner::generate().sign(&Assignment { expires_at: rfc3339(app.clock.now_ms() + 60_000), ..stale });
    assert!(matches!(agent.consider(&foreign).await, Outcome::Refused(Refusal::UnknownKey(_))));
    assert_eq!(served(), b"weights two");
    assert_eq!(agent.held_counter(), 2);

    // A digest mismatch is reported failed and never served.
    deploy(&app, 3).await;
    let third = agent.poll().await.unwrap().expect("the third assignment");
    let Outcome::Failed(error) = agent.consider(&third).await else { panic!("served a bad digest") };
    assert!(error.contains("digest mismatch"), "{error}");
    assert_eq!(served(), b"weights two", "the verified version stays");
    let fleet = json(app.get(&format!("{STAGING}/fleet")).await, 200).await;
    let reported = &fleet["agents"][0];
    assert_eq!(
        (reported["state"].as_str(), reported["counter"].as_i64(), reported["version"].as_i64()),
        (Some("failed"), Some(3), Some(2))
    );
    assert!(reported["error"].as_str().unwrap().contains("digest mismatch"), "{reported}");
    // A restarted agent still holds counter 2 (and refuses counter 1).
    let restarted = Agent::new(args).unwrap().with_clock(app.clock.clone());
    assert_eq!(restarted.held_counter(), 2);
    assert!(matches!(restarted.consider(&first).await, Outcome::Refused(Refusal::Replayed(1, 2))));
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(outside).unwrap();
    app.stop().await;
}

async fn report(app: &TestApp, agent: &reqwest::Client, instance: &str, counter: i64, version: i64) {
    let body = json!({ "group": "eu-west", "counter": counter, "version": version, "digest": digest(version as u8), "state": "ready" });
    let url = app.url(&format!("{STAGING}/agents/{instance}"));
    json(agent.put(url).json(&body).send().await.unwrap(), 200).await;
}

async fn rollout_state(app: &TestApp) -> Value {
    json(app.get(&format!("{STAGING}/fleet")).await, 200).await["rollout"].clone()
}

async fn a_rollout_converges_goes_partial_while_an_agent_is_lost_and_converges_when_it_returns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    let policy = json!({ "approvals_required": 0, "approval_ttl_minutes": 60, "convergence_deadline_seconds": 60 });
    json(app.client.put(app.url("/api/v1/environments/staging/policy")).json(&policy).send().await.unwrap(), 200).await;
    let agent = bearer_client(&agent_token(&app, "fleet-eu", &["staging"]).await);
    let mut receiver = WebhookReceiver::start(0).await;
    json(app.post("/api/v1/webhooks", &json!({ "url": receiver.url, "environment": "staging" })).await, 201).await;
    // Three agents start before anything is live, then the first deploy reaches them.
    for instance in ["a", "b", "c"] {
        let waiting = json!({ "group": "eu-west", "counter": 0, "version": null, "state": "downloading" });
        let url = app.url(&format!("{STAGING}/agents/{instance}"));
        json(agent.put(url).json(&waiting).send().await.unwrap(), 200).await;
    }
    deploy(&app, 1).await;
    assert_eq!(rollout_state(&app).await["state"], "issued");
    report(&app, &agent, "a", 1, 1).await;
    assert_eq!(rollout_state(&app).await["state"], "propagating");
    for instance in ["b", "c"] {
        report(&app, &agent, instance, 1, 1).await;
    }
    let rollout = rollout_state(&app).await;
    assert_eq!((rollout["state"].as_str(), rollout["serving"].as_i64()), (Some("converged"), Some(3)), "{rollout}");
    let before_rollback = app.clock.now_ms();

    app.clock.advance(5_000);
    deploy(&app, 2).await;
    report(&app, &agent, "a", 2, 2).await;
    report(&app, &agent, "b", 2, 2).await;
    assert_eq!(rollout_state(&app).await["state"], "propagating");
    let fleet = json(app.get(&format!("{STAGING}/fleet")).await, 200).await;
    assert_eq!(
        fleet["groups"][0]["serving"],
        json!([{ "version": 2, "instances": 2 }, { "version": 1, "instances": 1 }])
    );

    // "c" stays silent: lost after three heartbeats (the others keep beating).
    for _ in 0..4 {
        app.clock.advance(9_000);
        report(&app, &agent, "a", 2, 2).await;
        report(&app, &agent, "b", 2, 2).await;
        app.store.sweep_fleet().await.unwrap();
    }
    let fleet = json(app.get(&format!("{STAGING}/fleet")).await, 200).await;
    let c = fleet["agents"].as_array().unwrap().iter().find(|a| a["instance"] == "c").unwrap().clone();
    assert_eq!(c["state"], "lost", "{fleet}");
    assert_eq!(fleet["rollout"]["state"], "propagating", "the deadline has not passed");
    app.clock.advance(30_000);
    report(&app, &agent, "a", 2, 2).await;
    report(&app, &agent, "b", 2, 2).await;
    app.store.sweep_fleet().await.unwrap();
    let rollout = rollout_state(&app).await;
    assert_eq!(rollout["state"], "partially_converged", "{rollout}");
    assert_eq!(rollout["stragglers"], json!(["c"]));
    let during = app.clock.now_ms();

    app.clock.advance(5_000);
    report(&app, &agent, "c", 2, 2).await;
    let rollout = rollout_state(&app).await;
    assert_eq!(rollout["state"], "converged", "{rollout}");
    let history = json(app.get(&format!("{STAGING}/history")).await, 200).await;
    assert_eq!(history["items"][0]["rollout"], "converged");
    // Webhooks hear each change and how its rollout ended.
    let mut heard = Vec::new();
    for _ in 0..5 {
        let delivery: Value = serde_json::from_str(&receiver.next().await.body).unwrap();
        let rollout = delivery["rollout"]["state"].as_str().unwrap_or("-").to_string();
        heard.push((
            delivery["type"].as_str().unwrap().to_string(),
            delivery["deployment"]["revision"].as_i64().unwrap(),
            rollout,
        ));
    }
    heard.sort();
    let expected = [
        ("deployment", 1, "-"),
        ("deployment", 2, "-"),
        ("rollout", 1, "converged"),
        ("rollout", 2, "converged"),
        ("rollout", 2, "partially_converged"),
    ];
    assert_eq!(heard, expected.map(|(t, r, s)| (t.to_string(), r, s.to_string())));
    assert_eq!(history["items"][0]["converged_at"], rfc3339(app.clock.now_ms()));
    assert_eq!(history["items"][1]["rollout"], "converged");

    let actions: Vec<String> = json(app.get("/api/v1/audit?model=m&limit=100").await, 200).await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("rollout.") || a.starts_with("agent."))
        .collect();
    for expected in
        ["rollout.converged", "rollout.propagating", "rollout.partially_converged", "agent.lost", "agent.returned"]
    {
        assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| *a == "agent.lost").count(), 1, "one lost agent, one entry: {actions:?}");

    // Point in time: what was live and what the group served then.
    let at = |ms: i64| format!("{STAGING}/state?at={}", rfc3339(ms).replace(':', "%3A"));
    let then = json(app.get(&at(before_rollback)).await, 200).await;
    assert_eq!(then["live_version"], 1);
    assert_eq!(
        then["groups"],
        json!([{ "group": "eu-west", "instances": 3, "serving": [{ "version": 1, "instances": 3 }], "downloading": 0, "failed": 0, "lost": 0 }])
    );
    let then = json(app.get(&at(during)).await, 200).await;
    assert_eq!(then["live_version"], 2);
    assert_eq!(then["groups"][0]["serving"], json!([{ "version": 2, "instances": 2 }]), "{then}");
    assert_eq!(then["groups"][0]["lost"], 1);
    expect_error(app.get(&format!("{STAGING}/state?at=yesterday")).await, 422, Some("at")).await;

    // An operator takes "c" out of service; the agent role cannot.
    let remove = agent.delete(app.url(&format!("{STAGING}/agents/c"))).send().await.unwrap();
    expect_error(remove, 403, None).await;
    assert_eq!(app.delete(&format!("{STAGING}/agents/c")).await.status(), 204);
    assert_eq!(json(app.get(&format!("{STAGING}/fleet")).await, 200).await["agents"].as_array().unwrap().len(), 2);
    app.stop().await;
}
