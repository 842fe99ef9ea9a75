//! Webhooks: signed deliveries of live-version changes from a durable outbox, retried with
//! backoff, logged per attempt, and delivered after a server restart.

use app::domain::Role;
use modelgate_tests::{
    Backend, Delivery, ServerProcess, TestApp, TestDb, WebhookReceiver, bearer_client, digest, expect_error, free_port,
    json, migrate_with_user, on_both_backends, seed_model,
};
use serde_json::{Value, json};
use server::webhooks::delivery::signature;

on_both_backends!(webhooks_get_signed_changes_retried_until_delivered, a_change_waits_in_the_outbox_across_a_restart);

/// Checks the `Modelgate-Signature` of a delivery against the secret; returns the JSON body.
fn verified(delivery: &Delivery, secret: &str) -> Value {
    let header = delivery.headers["modelgate-signature"].to_str().unwrap();
    let timestamp: i64 = header.strip_prefix("t=").and_then(|h| h.split(',').next()).unwrap().parse().unwrap();
    assert_eq!(header, signature(secret, timestamp, &delivery.body), "signed with the webhook's secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - timestamp).abs() < 60, "the signature's time is now: {timestamp}");
    serde_json::from_str(&delivery.body).unwrap()
}

/// The delivery log once `until` holds for it (the receiver sees a request a moment before the
/// server records the answer).
async fn log_until<F: std::future::Future<Output = Value>>(
    log: impl Fn() -> F,
    until: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..400 {
        let page = log().await;
        if until(&page) {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the delivery log never got there: {}", log().await);
}

fn attempts(log: &Value) -> usize {
    log["items"][0]["attempts"].as_array().map_or(0, Vec::len)
}

fn delivered(log: &Value) -> bool {
    log["items"][0]["status"] == "delivered"
}

async fn webhooks_get_signed_changes_retried_until_delivered(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.webhooks.retry_base_ms = 100;
        c.webhooks.retry_max_ms = 400;
    })
    .await;
    seed_model(&app, "m", 2).await;
    seed_model(&app, "other", 1).await;
    let mut receiver = WebhookReceiver::start(0).await;
    let mut elsewhere = WebhookReceiver::start(0).await;

    for (body, field) in [
        (json!({ "url": "ftp://x" }), "url"),
        (json!({ "url": receiver.url, "model": "nope" }), "model"),
        (json!({ "url": receiver.url, "environment": "mars" }), "environment"),
        (json!({ "url": receiver.url, "colour": "red" }), "colour"),
    ] {
        expect_error(app.post("/api/v1/webhooks", &body).await, 422, Some(field)).await;
    }
    let operator = app.client_as("op", &[Role::Operator]).await;
    let refused =
        operator.post(app.url("/api/v1/webhooks")).json(&json!({ "url": receiver.url })).send().await.unwrap();
    assert_eq!(refused.status(), 403);

    let created = json(
        app.post("/api/v1/webhooks", &json!({ "url": receiver.url, "model": "m", "description": "deployer" })).await,
        201,
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() == 70, "{secret}");
    let id = created["webhook"]["id"].as_i64().unwrap();
    json(app.post("/api/v1/webhooks", &json!({ "url": elsewhere.url, "model": "other" })).await, 201).await;
    assert!(json(app.get("/api/v1/webhooks").await, 200).await.to_string().contains("deployer"));
    assert!(!json(app.get("/api/v1/webhooks").await, 200).await.to_string().contains(&secret), "never shown again");

    // The receiver fails the first attempt; the retry is delivered.
    receiver.status.store(500, std::sync::atomic::Ordering::SeqCst);
    json(
        app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 2, "reason": "go" })).await,
        201,
    )
    .await;
    let first = receiver.next().await;
    receiver.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let log = || async { json(app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await, 200).await };
    let failed = log_until(log, |l| attempts(l) == 1).await;
    assert_eq!(failed["items"][0]["status"], "pending", "to be retried");
    app.clock.advance(1_000);
    let second = receiver.next().await;
    assert_eq!(first.body, second.body, "a retry sends the same event");
    assert_eq!(first.headers["modelgate-event-id"], second.headers["modelgate-event-id"]);
    let payload = verified(&second, &secret);
    assert_eq!(payload["type"], "deployment");
    assert_eq!(payload["id"].to_string(), second.headers["modelgate-event-id"].to_str().unwrap());
    let deployment = &payload["deployment"];
    assert_eq!((deployment["model"].as_str(), deployment["environment"].as_str()), (Some("m"), Some("production")));
    assert_eq!((deployment["to_version"].as_i64(), deployment["revision"].as_i64()), (Some(2), Some(1)));
    assert_eq!(deployment["kind"], "deploy");
    assert_eq!(second.headers["content-type"], "application/json");

    let log = log_until(log, delivered).await;
    assert_eq!(log["total"], 1);
    let delivery = &log["items"][0];
    assert_eq!(delivery["status"], "delivered");
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.iter().map(|a| a["status_code"].as_i64().unwrap()).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(attempts[0]["error"], "the receiver answered 500 Internal Server Error");
    assert_eq!(delivery["payload"], payload);
    let listed = json(app.get("/api/v1/webhooks").await, 200).await;
    let hook = listed.as_array().unwrap().iter().find(|w| w["id"] == id).unwrap().clone();
    assert_eq!((hook["delivered"].as_i64(), hook["pending"].as_i64()), (Some(1), Some(0)));

    // Paused: nothing is queued for it; the other model's webhook saw nothing of m.
    json(app.patch(&format!("/api/v1/webhooks/{id}"), &json!({ "active": false })).await, 200).await;
    json(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 1 })).await, 201).await;
    assert_eq!(json(app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await, 200).await["total"], 1);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), elsewhere.next()).await.is_err(),
        "another model's webhook gets nothing"
    );
    let deleted = json(app.delete(&format!("/api/v1/webhooks/{id}")).await, 200).await;
    assert_eq!(deleted["active"], false);
    expect_error(app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await, 404, None).await;
    let entries = json(app.get("/api/v1/audit?q=webhook").await, 200).await;
    let actions: Vec<&str> =
        entries["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["webhook.delete", "webhook.update", "webhook.create", "webhook.create"]);
}

async fn a_change_waits_in_the_outbox_across_a_restart(backend: Backend) {
    let db = TestDb::create(backend).await;
    let token = migrate_with_user(&db.url, &["operator", "admin"]);
    let client = bearer_client(&token);
    let retry = ["--webhook-retry-base-ms", "100", "--webhook-retry-max-ms", "300"];
    let port = free_port();
    let hook = format!("http://127.0.0.1:{port}/hook");

    let first = ServerProcess::start(&db.url, &retry).await;
    let post = |base: &str, path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();
    let created = post(&first.base, "/api/v1/webhooks", json!({ "url": hook })).await.unwrap();
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let deliveries = format!("/api/v1/webhooks/{}/deliveries", created["webhook"]["id"]);
    post(&first.base, "/api/v1/models", json!({ "name": "m" })).await.unwrap();
    let version = json!({ "artifact_uri": "s3://m/1", "artifact_digest": digest(1) });
    post(&first.base, "/api/v1/models/m/versions", version).await.unwrap();
    let deployed = post(&first.base, "/api/v1/models/m/environments/production/deploy", json!({ "version": 1 })).await;
    assert_eq!(deployed.unwrap().status(), 201);
    // The receiver is down: attempts fail and are logged.
    let log = |base: String| {
        let client = client.clone();
        let url = format!("{base}{deliveries}");
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
        }
    };
    let before = log_until(log(first.base.clone()), |l| attempts(l) >= 1).await;
    let failed_attempt = before["items"][0]["attempts"][0].clone();
    assert!(failed_attempt["status_code"].is_null());
    assert!(failed_attempt["error"].as_str().unwrap().to_lowercase().contains("refused"), "{failed_attempt}");
    let stopped = first.terminate().await;
    assert!(stopped.status.success());

    // Another server process on the same database, then the receiver comes back.
    let second = ServerProcess::start(&db.url, &retry).await;
    let mut receiver = WebhookReceiver::start(port).await;
    let delivery = receiver.next().await;
    let payload = verified(&delivery, &secret);
    assert_eq!(payload["deployment"]["to_version"], 1);
    assert_eq!(payload["deployment"]["model"], "m");
    let log = log_until(log(second.base.clone()), delivered).await;
    assert!(attempts(&log) > attempts(&before), "failed before the restart, delivered after: {log}");
    assert_eq!(log["items"][0]["attempts"].as_array().unwrap().last().unwrap()["status_code"], 200);
    assert_eq!(log["total"], 1, "one change, one delivery");
}

on_both_backends!(webhooks_reach_public_addresses_only_unless_the_operator_allows_more);

/// Server-side request forgery: by default a webhook may not target loopback, private,
/// link-local or metadata addresses — refused when made if the URL holds the address, and when
/// sent if a name resolves to one (so DNS cannot sneak around the check).
async fn webhooks_reach_public_addresses_only_unless_the_operator_allows_more(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.webhooks.allow_private = false).await;
    seed_model(&app, "m", 1).await;
    let mut receiver = WebhookReceiver::start(0).await;
    let port = receiver.url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    for url in [
        receiver.url.clone(),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/hook".to_string(),
        "http://[::ffff:127.0.0.1]/hook".to_string(),
    ] {
        let refused = expect_error(app.post("/api/v1/webhooks", &json!({ "url": url })).await, 422, Some("url")).await;
        assert!(refused["error"]["message"].as_str().unwrap().contains("public addresses only"), "{refused}");
    }
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let created = json(app.post("/api/v1/webhooks", &json!({ "url": by_name, "model": "m" })).await, 201).await;
    let id = created["webhook"]["id"].as_i64().unwrap();
    json(app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 1 })).await, 201).await;
    let log = || async { json(app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await, 200).await };
    let failed = log_until(log, |l| attempts(l) >= 1).await;
    let error = failed["items"][0]["attempts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("resolves to a loopback address"), "{error}");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), receiver.next()).await.is_err(),
        "nothing reached the loopback receiver"
    );
}
