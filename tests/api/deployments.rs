//! Deploying versions: the live version per environment, its ETag, history, and compare-and-swap.

use futures::future::join_all;
use modelgate_tests::{Backend, TestApp, expect_error, json, on_both_backends, seed_model};
use serde_json::json;

on_both_backends!(
    deploy_moves_the_live_version_and_records_history,
    live_version_has_an_etag_and_answers_304_while_unchanged,
    deploy_refuses_what_must_not_go_live,
    stale_expected_revision_changes_nothing,
    racing_deploys_make_exactly_one_change,
    environments_can_be_added,
);

async fn deploy_moves_the_live_version_and_records_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    let first = json(
        app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 1, "reason": "launch" })).await,
        201,
    )
    .await;
    assert_eq!(first["from_version"], serde_json::Value::Null);
    assert_eq!(first["revision"], 1);
    app.clock.advance(60_000);
    let second =
        json(app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 3 })).await, 201).await;
    assert_eq!(second["from_version"], 1);
    assert_eq!(second["to_version"], 3);
    assert_eq!(second["kind"], "deploy");
    assert_eq!(second["created_at"], "2026-01-01T00:01:00Z");

    let live = json(app.get("/api/v1/models/m/environments/production").await, 200).await;
    assert_eq!(live["version"], 3);
    assert_eq!(live["revision"], 2);
    let staging = json(app.get("/api/v1/models/m/environments/staging").await, 200).await;
    assert!(staging["version"].is_null(), "environments are independent");

    let model = json(app.get("/api/v1/models/m").await, 200).await;
    assert_eq!(model["live"][1]["environment"], "production");
    assert_eq!(model["live"][1]["version"], 3);
    let v3 = json(app.get("/api/v1/models/m/versions/3").await, 200).await;
    assert_eq!(v3["live_in"], json!(["production"]));

    let history = json(app.get("/api/v1/models/m/environments/production/history").await, 200).await;
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["to_version"], 3, "newest first");
    assert_eq!(history["items"][1]["reason"], "launch");
    assert_eq!(history["items"][1]["actor"], "tester (token tests)");
}

async fn live_version_has_an_etag_and_answers_304_while_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    json(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 1 })).await, 201).await;
    let first = app.get("/api/v1/models/m/environments/staging").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let url = app.url("/api/v1/models/m/environments/staging");
    let cached = app.client.get(&url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"].to_str().unwrap(), etag);
    json(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 2 })).await, 201).await;
    let changed = app.client.get(&url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(json(changed, 200).await["version"], 2);
}

async fn deploy_refuses_what_must_not_go_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    json(app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "s3://no-digest" })).await, 201).await;
    let no_digest = expect_error(
        app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 2 })).await,
        409,
        None,
    )
    .await;
    assert!(no_digest["error"]["message"].as_str().unwrap().contains("digest"));
    expect_error(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 9 })).await, 404, None)
        .await;
    expect_error(app.post("/api/v1/models/m/environments/moon/deploy", &json!({ "version": 1 })).await, 404, None)
        .await;
    expect_error(app.post("/api/v1/models/x/environments/staging/deploy", &json!({ "version": 1 })).await, 404, None)
        .await;
    expect_error(
        app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": "one" })).await,
        422,
        Some("version"),
    )
    .await;
    expect_error(
        app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 0 })).await,
        422,
        Some("version"),
    )
    .await;
    json(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 1 })).await, 201).await;
    let again = expect_error(
        app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 1 })).await,
        409,
        None,
    )
    .await;
    assert!(again["error"]["message"].as_str().unwrap().contains("already live"));
    let history = json(app.get("/api/v1/models/m/environments/staging/history").await, 200).await;
    assert_eq!(history["total"], 1, "refused deploys leave no history");
}

async fn stale_expected_revision_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    json(
        app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 1, "expected_revision": 0 }))
            .await,
        201,
    )
    .await;
    let stale = expect_error(
        app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 2, "expected_revision": 0 }))
            .await,
        409,
        None,
    )
    .await;
    assert!(stale["error"]["message"].as_str().unwrap().starts_with("stale"));
    let live = json(app.get("/api/v1/models/m/environments/production").await, 200).await;
    assert_eq!(live["version"], 1);
    json(
        app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 2, "expected_revision": 1 }))
            .await,
        201,
    )
    .await;
}

async fn racing_deploys_make_exactly_one_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 9).await;
    json(app.post("/api/v1/models/m/environments/production/deploy", &json!({ "version": 1 })).await, 201).await;
    let bodies: Vec<_> = (2..=9).map(|v| json!({ "version": v, "expected_revision": 1 })).collect();
    let responses =
        join_all(bodies.iter().map(|b| app.post("/api/v1/models/m/environments/production/deploy", b))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    let history = json(app.get("/api/v1/models/m/environments/production/history").await, 200).await;
    assert_eq!(history["total"], 2);
    let live = json(app.get("/api/v1/models/m/environments/production").await, 200).await;
    assert_eq!(live["revision"], 2);
    assert_eq!(live["version"], history["items"][0]["to_version"]);
}

async fn environments_can_be_added(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created =
        json(app.post("/api/v1/environments", &json!({ "name": "canary", "description": "5% of traffic" })).await, 201)
            .await;
    assert_eq!(created["name"], "canary");
    expect_error(app.post("/api/v1/environments", &json!({ "name": "canary" })).await, 409, Some("name")).await;
    expect_error(app.post("/api/v1/environments", &json!({ "name": "Canary!" })).await, 422, Some("name")).await;
    let names: Vec<String> = json(app.get("/api/v1/environments").await, 200)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["staging", "production", "canary"]);
    seed_model(&app, "m", 1).await;
    json(app.post("/api/v1/models/m/environments/canary/deploy", &json!({ "version": 1 })).await, 201).await;
}
