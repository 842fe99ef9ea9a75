//! Guarded rollback: preflight, four-eyes reviews, compare-and-swap execution, expiry,
//! idempotency, break glass, automatic requests, and live events resumed after `Last-Event-ID`.

use app::domain::Role;
use futures::future::join_all;
use modelgate_tests::{Backend, EventStream, TestApp, expect_error, json, on_both_backends, seed_model};
use reqwest::Client;
use serde_json::{Value, json};

on_both_backends!(
    preflight_refuses_with_a_clear_message,
    approvals_by_distinct_reviewers_execute_the_rollback,
    a_changed_live_version_makes_requests_stale,
    requests_expire_after_their_time_to_live,
    idempotency_keys_replay_refuse_and_serialise,
    a_hundred_parallel_approvals_change_the_live_version_once,
    break_glass_rolls_back_at_once_and_awaits_acknowledgement,
    a_failing_live_version_files_its_own_request,
    events_resume_after_the_last_event_id,
);

const PRODUCTION: &str = "/api/v1/models/m/environments/production";
const ROLLBACKS: &str = "/api/v1/models/m/environments/production/rollbacks";

async fn deploy(app: &TestApp, environment: &str, version: i64) -> Value {
    let path = format!("/api/v1/models/m/environments/{environment}/deploy");
    json(app.post(&path, &json!({ "version": version, "reason": "release" })).await, 201).await
}

/// Model `m` with versions 1–4 (digests) and production history 1 → 2 → 4, a minute apart.
async fn with_history(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 4).await;
    for v in [1, 2, 4] {
        deploy(&app, "production", v).await;
        app.clock.advance(60_000);
    }
    app
}

async fn set_policy(app: &TestApp, environment: &str, policy: Value) -> Value {
    let response = app.client.put(app.url(&format!("/api/v1/environments/{environment}/policy"))).json(&policy).send();
    json(response.await.unwrap(), 200).await
}

async fn post_as(client: &Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    client.post(app.url(path)).json(&body).send().await.unwrap()
}

async fn live_version(app: &TestApp) -> i64 {
    json(app.get(PRODUCTION).await, 200).await["version"].as_i64().unwrap()
}

async fn history_total(app: &TestApp) -> i64 {
    json(app.get(&format!("{PRODUCTION}/history")).await, 200).await["total"].as_i64().unwrap()
}

async fn audit_count(app: &TestApp, action: &str) -> usize {
    let page = json(app.get(&format!("/api/v1/audit?model=m&action={action}&limit=200")).await, 200).await;
    page["entries"].as_array().unwrap().len()
}

fn message(error: &Value) -> &str {
    error["error"]["message"].as_str().unwrap()
}

async fn preflight_refuses_with_a_clear_message(backend: Backend) {
    let app = with_history(backend).await;
    json(app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "s3://no-digest" })).await, 201).await;
    json(app.post("/api/v1/models/m/versions/3/quarantine", &json!({ "reason": "bad data" })).await, 200).await;

    let plan = json(app.get(&format!("{PRODUCTION}/rollback-plan")).await, 200).await;
    assert_eq!(plan["live"]["version"], 4);
    assert_eq!(plan["proposed"], 2, "the version live before the current one, not 'the previous number'");
    assert_eq!(plan["target"], 2);
    assert!(plan["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{plan}");
    let candidates = plan["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 5);
    let blocker = |v: i64| candidates.iter().find(|c| c["version"] == v).unwrap()["blocker"].clone();
    assert!(blocker(3).as_str().unwrap().contains("quarantined"));
    assert!(blocker(4).as_str().unwrap().contains("live now"));
    assert!(blocker(5).as_str().unwrap().contains("digest"));
    assert!(blocker(1).is_null() && blocker(2).is_null());
    let other = json(app.get(&format!("{PRODUCTION}/rollback-plan?to_version=3")).await, 200).await;
    assert_eq!(other["target"], 3);
    assert_eq!(other["checks"][1]["passed"], false);

    let refusals = [
        (json!({ "to_version": 4, "reason": "r" }), 409, None, "v4 is already live in production"),
        (json!({ "to_version": 3, "reason": "r" }), 409, None, "version 3 is quarantined: bad data"),
        (json!({ "to_version": 5, "reason": "r" }), 409, None, "version 5 has no artifact digest"),
        (json!({ "to_version": 99, "reason": "r" }), 422, Some("to_version"), "version 99 was never registered for m"),
        (json!({ "to_version": 2, "reason": " " }), 422, Some("reason"), "reason: is required"),
        (json!({ "to_version": 0, "reason": "r" }), 422, Some("to_version"), "positive"),
    ];
    for (body, status, field, text) in refusals {
        let error = expect_error(app.post(ROLLBACKS, &body).await, status, field).await;
        assert!(message(&error).contains(text), "{body}: {error}");
    }
    let nothing_live = expect_error(
        app.post("/api/v1/models/m/environments/staging/rollbacks", &json!({ "reason": "r" })).await,
        409,
        None,
    )
    .await;
    assert_eq!(message(&nothing_live), "nothing is live in staging to roll back");
    expect_error(
        app.post("/api/v1/models/nope/environments/production/rollbacks", &json!({ "reason": "r" })).await,
        404,
        None,
    )
    .await;

    // A freeze window around now refuses requests and deploys alike.
    let frozen = set_policy(
        &app,
        "production",
        json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "freeze_windows": [
            { "starts_at": "2025-12-31T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z", "reason": "year-end" }
        ] }),
    )
    .await;
    assert_eq!(frozen["freeze_windows"][0]["ends_at"], "2026-01-02T00:00:00Z");
    let error = expect_error(app.post(ROLLBACKS, &json!({ "reason": "r" })).await, 409, None).await;
    assert_eq!(message(&error), "production is frozen until 2026-01-02T00:00:00Z (year-end)");
    let error =
        expect_error(app.post(&format!("{PRODUCTION}/deploy"), &json!({ "version": 1 })).await, 409, None).await;
    assert!(message(&error).starts_with("production is frozen until"), "{error}");
    let plan = json(app.get(&format!("{PRODUCTION}/rollback-plan")).await, 200).await;
    assert_eq!(plan["frozen"]["reason"], "year-end");
    set_policy(&app, "production", json!({ "approvals_required": 1, "approval_ttl_minutes": 60 })).await;

    let first = json(app.post(ROLLBACKS, &json!({ "reason": "latency regression" })).await, 201).await;
    assert_eq!((first["from_version"].as_i64(), first["to_version"].as_i64()), (Some(4), Some(2)));
    assert_eq!(first["status"], "open");
    assert_eq!(first["expires_at"], "2026-01-01T01:03:00Z", "requested at 00:03, one hour to live");
    let again = expect_error(app.post(ROLLBACKS, &json!({ "to_version": 1, "reason": "r" })).await, 409, None).await;
    assert_eq!(message(&again), format!("rollback request #{} is already open for m in production", first["id"]));

    for role in [Role::Viewer, Role::Reviewer, Role::Compliance, Role::Admin] {
        let client = app.client_as(&format!("as-{}", role.as_str()), &[role]).await;
        let response = post_as(&client, &app, ROLLBACKS, json!({ "reason": "r" })).await;
        assert_eq!(response.status(), 403, "{role:?} may not request rollbacks");
    }
    // Bad policies name their field.
    let bad_policies = [
        (json!({ "approvals_required": 11, "approval_ttl_minutes": 60 }), "approvals_required"),
        (json!({ "approvals_required": 1, "approval_ttl_minutes": 0 }), "approval_ttl_minutes"),
        (
            json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "break_glass_roles": ["viewer"] }),
            "break_glass_roles",
        ),
        (
            json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "freeze_windows": [{ "starts_at": "soon", "ends_at": "2026-01-02T00:00:00Z" }] }),
            "freeze_windows[0].starts_at",
        ),
        (
            json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "freeze_windows": [{ "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z" }] }),
            "freeze_windows[0].ends_at",
        ),
        (json!({ "approvals_required": -1, "approval_ttl_minutes": 60 }), "approvals_required"),
    ];
    for (policy, field) in bad_policies {
        let response = app.client.put(app.url("/api/v1/environments/production/policy")).json(&policy).send();
        expect_error(response.await.unwrap(), 422, Some(field)).await;
    }
    let operator = app.client_as("op", &[Role::Operator]).await;
    let response = operator
        .put(app.url("/api/v1/environments/production/policy"))
        .json(&json!({ "approvals_required": 0, "approval_ttl_minutes": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "only admins edit policies");
    assert_eq!(audit_count(&app, "policy.update").await, 0, "policy entries are not about model m");
    let policy_entries = json(app.get("/api/v1/audit?action=policy.update").await, 200).await;
    assert_eq!(policy_entries["entries"].as_array().unwrap().len(), 2, "both policy changes are audited");
}

async fn approvals_by_distinct_reviewers_execute_the_rollback(backend: Backend) {
    let app = with_history(backend).await;
    set_policy(&app, "production", json!({ "approvals_required": 2, "approval_ttl_minutes": 60 })).await;
    let alice = app.client_as("alice", &[Role::Operator, Role::Reviewer]).await;
    let bob = app.client_as("bob", &[Role::Reviewer]).await;
    let carol = app.client_as("carol", &[Role::Reviewer]).await;
    let request = json(post_as(&alice, &app, ROLLBACKS, json!({ "reason": "p99 latency doubled" })).await, 201).await;
    let id = request["id"].as_i64().unwrap();
    assert_eq!(request["requester"], "alice");
    assert_eq!(request["approvals_required"], 2);
    let approve = format!("/api/v1/rollbacks/{id}/approve");

    // The requester cannot approve: not with the same token, a second token, or a session.
    let refused = expect_error(post_as(&alice, &app, &approve, json!({})).await, 403, None).await;
    assert!(message(&refused).contains("another reviewer must approve"), "{refused}");
    let second_token = modelgate_tests::bearer_client(
        &app.store
            .bootstrap_token(
                "alice",
                app::domain::NewToken {
                    name: "ci".into(),
                    owner: None,
                    roles: vec![Role::Reviewer],
                    expires_in_days: None,
                    environments: Vec::new(),
                },
            )
            .await
            .unwrap()
            .token,
    );
    expect_error(post_as(&second_token, &app, &approve, json!({})).await, 403, None).await;
    let (cookie, _) = app.sign_in("alice", modelgate_tests::PASSWORD).await;
    let session = app.session_client(&cookie.expect("signed in"));
    expect_error(post_as(&session, &app, &approve, json!({})).await, 403, None).await;
    // The operator who deployed is not a reviewer at all.
    expect_error(app.post(&approve, &json!({})).await, 403, None).await;

    let one = json(post_as(&bob, &app, &approve, json!({ "comment": "confirmed on the dashboard" })).await, 200).await;
    assert_eq!((one["status"].as_str(), one["approvals"].as_i64()), (Some("open"), Some(1)));
    assert_eq!(one["reviews"][0]["reviewer"], "bob");
    assert_eq!(one["reviews"][0]["comment"], "confirmed on the dashboard");
    assert_eq!(live_version(&app).await, 4, "one approval of two changes nothing");
    let twice = expect_error(post_as(&bob, &app, &approve, json!({})).await, 409, None).await;
    assert_eq!(message(&twice), format!("you already reviewed rollback request {id}"));

    let done = json(post_as(&carol, &app, &approve, json!({})).await, 200).await;
    assert_eq!(done["status"], "executed");
    assert_eq!(done["approvals"], 2);
    assert_eq!(done["revision"], 4);
    assert_eq!(done["outcome"], "executed by carol (token tests): revision 4");
    assert_eq!(live_version(&app).await, 2);
    let history = json(app.get(&format!("{PRODUCTION}/history")).await, 200).await;
    assert_eq!(history["items"][0]["kind"], "rollback");
    assert_eq!(history["items"][0]["request"], id);
    assert_eq!(history["items"][0]["actor"], "carol (token tests)");
    assert_eq!(history["items"][0]["reason"], "p99 latency doubled");
    for (action, count) in [("rollback.request", 1), ("rollback.approve", 2), ("deployment.rollback", 1)] {
        assert_eq!(audit_count(&app, action).await, count, "{action}");
    }
    expect_error(post_as(&carol, &app, &approve, json!({})).await, 409, None).await;

    // Rejection needs a comment and closes the request; only the requester cancels.
    let second =
        json(post_as(&alice, &app, ROLLBACKS, json!({ "to_version": 1, "reason": "try v1" })).await, 201).await;
    let reject = format!("/api/v1/rollbacks/{}/reject", second["id"]);
    expect_error(post_as(&bob, &app, &reject, json!({ "comment": "" })).await, 422, Some("comment")).await;
    let rejected = json(post_as(&bob, &app, &reject, json!({ "comment": "v1 has the old features" })).await, 200).await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["outcome"], "rejected by bob (token tests): v1 has the old features");
    let third = json(post_as(&alice, &app, ROLLBACKS, json!({ "to_version": 1, "reason": "again" })).await, 201).await;
    let cancel = format!("/api/v1/rollbacks/{}/cancel", third["id"]);
    expect_error(app.post(&cancel, &json!({})).await, 403, None).await;
    let cancelled = json(post_as(&alice, &app, &cancel, json!({ "comment": "wrong target" })).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(live_version(&app).await, 2);

    let all = json(app.get("/api/v1/rollbacks?model=m").await, 200).await;
    assert_eq!(all["total"], 3);
    let statuses: Vec<&str> = all["items"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["cancelled", "rejected", "executed"], "newest first");
    let executed = json(app.get("/api/v1/rollbacks?status=executed").await, 200).await;
    assert_eq!(executed["total"], 1);
    expect_error(app.get("/api/v1/rollbacks?status=done").await, 422, Some("status")).await;
    expect_error(app.get("/api/v1/rollbacks/999").await, 404, None).await;
}

async fn a_changed_live_version_makes_requests_stale(backend: Backend) {
    let app = with_history(backend).await;
    let reviewer = app.client_as("rev", &[Role::Reviewer]).await;
    // A deploy while a request is open closes it as stale at once.
    let first = json(app.post(ROLLBACKS, &json!({ "reason": "r" })).await, 201).await;
    deploy(&app, "production", 3).await;
    let stale = json(app.get(&format!("/api/v1/rollbacks/{}", first["id"])).await, 200).await;
    assert_eq!(stale["status"], "stale");
    assert_eq!(stale["outcome"], "stale: v3 went live by a deploy by tester (token tests)");
    let error = expect_error(
        post_as(&reviewer, &app, &format!("/api/v1/rollbacks/{}/approve", first["id"]), json!({})).await,
        409,
        None,
    )
    .await;
    assert_eq!(message(&error), format!("rollback request {} is already stale", first["id"]));

    // A live version moved behind the service's back: the approval finds it changed (compare-and-
    // swap) and the request ends stale with nothing else changed.
    let second = json(app.post(ROLLBACKS, &json!({ "to_version": 2, "reason": "r" })).await, 201).await;
    assert_eq!(second["from_version"], 3);
    sqlx::query("UPDATE deployments SET version_number = 1, revision = revision + 1")
        .execute(app.store.db.pool())
        .await
        .unwrap();
    let history_before = history_total(&app).await;
    let result =
        json(post_as(&reviewer, &app, &format!("/api/v1/rollbacks/{}/approve", second["id"]), json!({})).await, 200)
            .await;
    assert_eq!(result["status"], "stale");
    assert_eq!(result["outcome"], "stale: v1 is live now, not v3 as when requested");
    assert_eq!(live_version(&app).await, 1, "nothing moved");
    assert_eq!(history_total(&app).await, history_before, "no history entry");
    assert_eq!(audit_count(&app, "deployment.rollback").await, 0);
    assert_eq!(audit_count(&app, "rollback.stale").await, 2);
}

async fn requests_expire_after_their_time_to_live(backend: Backend) {
    let app = with_history(backend).await;
    set_policy(&app, "production", json!({ "approvals_required": 1, "approval_ttl_minutes": 30 })).await;
    let reviewer = app.client_as("rev", &[Role::Reviewer]).await;
    let request = json(app.post(ROLLBACKS, &json!({ "reason": "r" })).await, 201).await;
    let id = request["id"].as_i64().unwrap();
    app.clock.advance(29 * 60_000);
    assert_eq!(json(app.get(&format!("/api/v1/rollbacks/{id}")).await, 200).await["status"], "open");
    app.clock.advance(60_000);
    assert_eq!(json(app.get(&format!("/api/v1/rollbacks/{id}")).await, 200).await["status"], "expired");
    let queue = json(app.get("/api/v1/rollbacks?awaiting_review=true").await, 200).await;
    assert_eq!(queue["total"], 0, "an expired request leaves the queue");
    let listed = json(app.get("/api/v1/rollbacks?status=expired").await, 200).await;
    assert_eq!(listed["total"], 1);
    let error =
        expect_error(post_as(&reviewer, &app, &format!("/api/v1/rollbacks/{id}/approve"), json!({})).await, 409, None)
            .await;
    assert_eq!(
        message(&error),
        format!("rollback request {id} expired at 2026-01-01T00:33:00Z and can no longer execute")
    );
    assert_eq!(live_version(&app).await, 4);
    assert_eq!(audit_count(&app, "rollback.expire").await, 1, "closed as expired, by the system");

    // The sweep closes the overdue ones nobody touched; a new request can be filed at once.
    let next = json(app.post(ROLLBACKS, &json!({ "reason": "again" })).await, 201).await;
    app.clock.advance(31 * 60_000);
    assert_eq!(app.store.expire_rollbacks().await.unwrap(), 1);
    assert_eq!(app.store.expire_rollbacks().await.unwrap(), 0);
    assert_eq!(json(app.get(&format!("/api/v1/rollbacks/{}", next["id"])).await, 200).await["status"], "expired");
    json(app.post(ROLLBACKS, &json!({ "reason": "third" })).await, 201).await;
}

async fn idempotency_keys_replay_refuse_and_serialise(backend: Backend) {
    let app = with_history(backend).await;
    let send =
        |key: &str, body: Value| app.client.post(app.url(ROLLBACKS)).header("Idempotency-Key", key).json(&body).send();
    let body = json!({ "to_version": 2, "reason": "retry-safe" });
    let first = send("key-1", body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first = first.text().await.unwrap();
    let retry = send("key-1", body.clone()).await.unwrap();
    assert_eq!(retry.status(), 201, "a retry gets the first result");
    assert_eq!(retry.headers()["idempotency-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), first);
    assert_eq!(json(app.get("/api/v1/rollbacks").await, 200).await["total"], 1, "and changes nothing");
    expect_error(
        send("key-1", json!({ "to_version": 1, "reason": "retry-safe" })).await.unwrap(),
        422,
        Some("Idempotency-Key"),
    )
    .await;
    // A refusal is a result too: replayed, not re-run.
    let refused = send("key-2", body.clone()).await.unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(send("key-2", body.clone()).await.unwrap().headers()["idempotency-replayed"], "true");
    expect_error(send("", body.clone()).await.unwrap(), 422, Some("Idempotency-Key")).await;

    // While the first request under a key runs (its row says so), a duplicate gets 409.
    let fingerprint = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"POST /api/v1/rollbacks/1/cancel\n{}"))
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (username, key, fingerprint, state, created_at) \
         VALUES ('tester', 'in-flight', $1, 'running', $2)",
    )
    .bind(fingerprint)
    .bind(modelgate_tests::TEST_EPOCH_MS + 180_000)
    .execute(app.store.db.pool())
    .await
    .unwrap();
    let in_flight = app
        .client
        .post(app.url("/api/v1/rollbacks/1/cancel"))
        .header("Idempotency-Key", "in-flight")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let error = expect_error(in_flight, 409, None).await;
    assert!(message(&error).contains("still being processed"), "{error}");

    // Twenty concurrent duplicates of one new request: it runs once.
    let racers = (0..20).map(|_| {
        app.client
            .post(app.url("/api/v1/rollbacks/1/cancel"))
            .header("Idempotency-Key", "race")
            .json(&json!({ "comment": "dup" }))
            .send()
    });
    let responses = join_all(racers).await;
    let mut first_results = 0;
    for r in responses {
        let r = r.unwrap();
        assert!(matches!(r.status().as_u16(), 200 | 409), "{}", r.status());
        if r.status() == 200 && r.headers().get("idempotency-replayed").is_none() {
            first_results += 1;
        }
    }
    assert_eq!(first_results, 1, "exactly one of the duplicates ran");
    assert_eq!(audit_count(&app, "rollback.cancel").await, 1);
}

async fn a_hundred_parallel_approvals_change_the_live_version_once(backend: Backend) {
    let app = with_history(backend).await;
    let request = json(app.post(ROLLBACKS, &json!({ "reason": "r" })).await, 201).await;
    let approve = format!("/api/v1/rollbacks/{}/approve", request["id"]);
    let mut reviewers = Vec::new();
    for i in 0..25 {
        reviewers.push(app.client_as(&format!("reviewer-{i}"), &[Role::Reviewer]).await);
    }
    let history_before = history_total(&app).await;
    let approvals =
        (0..100).map(|i| post_as(&reviewers[i % 25], &app, &approve, json!({ "comment": format!("#{i}") })));
    let statuses: Vec<u16> = join_all(approvals).await.into_iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99, "{statuses:?}");
    assert_eq!(live_version(&app).await, 2);
    assert_eq!(history_total(&app).await, history_before + 1, "exactly one history entry");
    assert_eq!(audit_count(&app, "deployment.rollback").await, 1);
    assert_eq!(audit_count(&app, "rollback.approve").await, 1);
}

async fn break_glass_rolls_back_at_once_and_awaits_acknowledgement(backend: Backend) {
    let app = with_history(backend).await;
    set_policy(
        &app,
        "production",
        json!({ "approvals_required": 2, "approval_ttl_minutes": 60, "break_glass_roles": ["operator"], "freeze_windows": [
            { "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-08T00:00:00Z", "reason": "launch week" }
        ] }),
    )
    .await;
    let oncall = app.client_as("oncall", &[Role::Operator, Role::Reviewer]).await;
    let reviewer = app.client_as("rev", &[Role::Reviewer]).await;
    let break_glass = "/api/v1/models/m/environments/production/break-glass";
    let justification = "fraud losses climbing every minute, reviewers asleep";
    let mut events = EventStream::open(app.client.get(app.url("/api/v1/events?model=m&types=deployment"))).await;

    let refusals = [
        (json!({ "justification": "", "confirm": "m" }), "justification"),
        (json!({ "justification": "too short", "confirm": "m" }), "justification"),
        (json!({ "justification": justification, "confirm": "other" }), "confirm"),
        (json!({ "justification": justification }), "confirm"),
        (json!({ "justification": justification, "confirm": "m", "to_version": 0 }), "to_version"),
    ];
    for (body, field) in refusals {
        expect_error(post_as(&oncall, &app, break_glass, body).await, 422, Some(field)).await;
    }
    let live =
        post_as(&oncall, &app, break_glass, json!({ "justification": justification, "confirm": "m", "to_version": 4 }));
    assert_eq!(message(&expect_error(live.await, 409, None).await), "v4 is already live in production");
    let reviewer_refused =
        post_as(&reviewer, &app, break_glass, json!({ "justification": justification, "confirm": "m" })).await;
    let error = expect_error(reviewer_refused, 403, None).await;
    assert_eq!(message(&error), "breaking glass in production is allowed for: operator");
    assert_eq!(live_version(&app).await, 4);

    // An open request is superseded; the freeze does not stop break glass.
    let open = json(post_as(&oncall, &app, ROLLBACKS, json!({ "reason": "slow path" })).await, 409).await;
    assert!(message(&open).contains("frozen"), "requests wait out the freeze: {open}");
    let done =
        json(post_as(&oncall, &app, break_glass, json!({ "justification": justification, "confirm": "m" })).await, 201)
            .await;
    assert_eq!(done["kind"], "break_glass");
    assert_eq!(done["status"], "executed");
    assert_eq!(done["to_version"], 2);
    assert!(done["acknowledgement"].is_null());
    assert_eq!(live_version(&app).await, 2);
    let event = events.next("deployment").await;
    assert_eq!(event.data["deployment"]["kind"], "break_glass");
    assert_eq!(event.data["deployment"]["reason"], justification);
    let history = json(app.get(&format!("{PRODUCTION}/history")).await, 200).await;
    assert_eq!(history["items"][0]["kind"], "break_glass");
    assert_eq!(audit_count(&app, "deployment.break_glass").await, 1);

    let queue = json(app.get("/api/v1/rollbacks?awaiting_review=true").await, 200).await;
    assert_eq!(queue["total"], 1, "the break glass waits for a reviewer");
    let acknowledge = format!("/api/v1/rollbacks/{}/acknowledge", done["id"]);
    expect_error(post_as(&oncall, &app, &acknowledge, json!({})).await, 403, None).await;
    let acked =
        json(post_as(&reviewer, &app, &acknowledge, json!({ "comment": "checked the losses" })).await, 200).await;
    assert_eq!(acked["acknowledgement"]["by"], "rev (token tests)");
    assert_eq!(acked["acknowledgement"]["comment"], "checked the losses");
    assert_eq!(json(app.get("/api/v1/rollbacks?awaiting_review=true").await, 200).await["total"], 0);
    expect_error(post_as(&reviewer, &app, &acknowledge, json!({})).await, 409, None).await;
    assert_eq!(audit_count(&app, "rollback.acknowledge").await, 1);
}

async fn a_failing_live_version_files_its_own_request(backend: Backend) {
    let app = with_history(backend).await;
    set_policy(
        &app,
        "production",
        json!({ "approvals_required": 1, "approval_ttl_minutes": 60, "auto_request": true }),
    )
    .await;
    json(
        app.post(
            "/api/v1/models/m/guardrails",
            &json!({ "environment": "production", "metric": "error_rate", "aggregation": "max",
                     "window": { "points": 3 }, "comparator": "<=", "threshold": 0.05, "enforced": true }),
        )
        .await,
        201,
    )
    .await;
    let points = |version: i64, value: f64| {
        let body = json!({ "points": [{ "key": "error_rate", "value": value, "source": "live", "environment": "production" }] });
        app.client.post(app.url(&format!("/api/v1/models/m/versions/{version}/metrics"))).json(&body).send()
    };
    // v2, the proposed target, was healthy while it was live.
    json(points(2, 0.01).await.unwrap(), 201).await;
    json(points(4, 0.01).await.unwrap(), 201).await;
    assert_eq!(json(app.get("/api/v1/rollbacks").await, 200).await["total"], 0, "healthy: nothing filed");
    json(points(4, 0.2).await.unwrap(), 201).await;
    let filed = json(app.get("/api/v1/rollbacks").await, 200).await;
    assert_eq!(filed["total"], 1);
    let request = &filed["items"][0];
    assert_eq!(request["kind"], "automatic");
    assert_eq!((request["from_version"].as_i64(), request["to_version"].as_i64()), (Some(4), Some(2)));
    assert_eq!(request["requested_by"], "system (guardrails)");
    assert_eq!(request["reason"], "v4 is failing its guardrails in production");
    assert_eq!(request["status"], "open", "it still needs approval");
    json(points(4, 0.3).await.unwrap(), 201).await;
    assert_eq!(json(app.get("/api/v1/rollbacks").await, 200).await["total"], 1, "filed once");
    let reviewer = app.client_as("rev", &[Role::Reviewer]).await;
    let done =
        json(post_as(&reviewer, &app, &format!("/api/v1/rollbacks/{}/approve", request["id"]), json!({})).await, 200)
            .await;
    assert_eq!(done["status"], "executed");
    assert_eq!(live_version(&app).await, 2);
}

async fn events_resume_after_the_last_event_id(backend: Backend) {
    let app = with_history(backend).await;
    let subscribe = |query: &str, last: Option<i64>| {
        let mut request = app.client.get(app.url(&format!("/api/v1/events?{query}")));
        if let Some(id) = last {
            request = request.header("Last-Event-ID", id.to_string());
        }
        EventStream::open(request)
    };
    let mut production = subscribe("model=m&environment=production&types=deployment,rollback", None).await;
    let mut staging = subscribe("model=m&environment=staging", None).await;
    deploy(&app, "production", 3).await;
    let first = production.next("deployment").await;
    assert_eq!(first.data["deployment"]["to_version"], 3);
    let first_id = first.id.expect("numbered");
    let request = json(app.post(ROLLBACKS, &json!({ "to_version": 4, "reason": "back to 4" })).await, 201).await;
    let filed = production.next("rollback").await;
    assert_eq!(filed.data["request"]["id"], request["id"]);
    assert!(filed.id.unwrap() > first_id);
    staging.expect_none("deployment", std::time::Duration::from_millis(300)).await;

    // A client that saw only the first event resumes after it: the rollback event is replayed,
    // then live events follow, each once.
    let mut resumed = subscribe("model=m&types=deployment,rollback", Some(first_id)).await;
    let replayed = resumed.next("rollback").await;
    assert_eq!(replayed.id, filed.id);
    deploy(&app, "staging", 1).await;
    let live = resumed.next("deployment").await;
    assert_eq!(live.data["deployment"]["environment"], "staging");
    assert!(live.id.unwrap() > filed.id.unwrap());
    let mut by_query = subscribe(&format!("model=m&types=rollback&last_event_id={first_id}"), None).await;
    assert_eq!(by_query.next("rollback").await.id, filed.id, "the query parameter resumes too");
    expect_error(app.get("/api/v1/events?types=deployment,nonsense").await, 422, Some("types")).await;
    let bad = app.client.get(app.url("/api/v1/events")).header("Last-Event-ID", "yesterday").send().await.unwrap();
    expect_error(bad, 422, Some("Last-Event-ID")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_through_one_server_reaches_subscribers_of_another() {
    let modelgate_tests::Replicas { servers, client, .. } = &modelgate_tests::Replicas::start(&["operator"]).await;
    let (one, other) = (&servers[0].base, &servers[1].base);
    let mut subscriber = EventStream::open(client.get(format!("{other}/api/v1/events?model=m&types=deployment"))).await;
    let post = |path: &str, body: Value| client.post(format!("{one}{path}")).json(&body).send();
    assert_eq!(post("/api/v1/models", json!({ "name": "m" })).await.unwrap().status(), 201);
    for n in 1..=2u8 {
        let version = json!({ "artifact_uri": format!("s3://m/{n}"), "artifact_digest": modelgate_tests::digest(n) });
        assert_eq!(post("/api/v1/models/m/versions", version).await.unwrap().status(), 201);
        let deployed = post("/api/v1/models/m/environments/staging/deploy", json!({ "version": n })).await.unwrap();
        assert_eq!(deployed.status(), 201);
        assert_eq!(subscriber.next("deployment").await.data["deployment"]["to_version"], n);
    }
    // Staging needs no approval: the request executes at once, through the first server.
    let rollback = post("/api/v1/models/m/environments/staging/rollbacks", json!({ "reason": "bad canary" })).await;
    let rollback = json(rollback.unwrap(), 201).await;
    assert_eq!(rollback["status"], "executed");
    let seen = subscriber.next("deployment").await;
    assert_eq!(seen.data["deployment"]["kind"], "rollback");
    assert_eq!(seen.data["deployment"]["to_version"], 1);
    assert_eq!(seen.data["deployment"]["request"], rollback["id"]);
}
