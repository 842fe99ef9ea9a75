//! Malformed requests: clear errors with the right status, never a 500, nothing stored changed.

use modelgate_tests::{Backend, TestApp, expect_error, json, on_both_backends, seed_model};

on_both_backends!(malformed_bodies_get_clear_errors, oversized_body_is_413);

async fn malformed_bodies_get_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let url = app.url("/api/v1/models");

    let not_json =
        app.client.post(&url).header("content-type", "application/json").body("{name:").send().await.unwrap();
    let body = expect_error(not_json, 400, None).await;
    assert_eq!(body["error"]["code"], "bad_request");

    let wrong_type =
        app.client.post(&url).body(r#"{"name":"x"}"#).header("content-type", "text/plain").send().await.unwrap();
    expect_error(wrong_type, 415, None).await;

    let number_name =
        app.client.post(&url).header("content-type", "application/json").body(r#"{"name": 5}"#).send().await.unwrap();
    expect_error(number_name, 422, Some("name")).await;

    let nested = app
        .client
        .post(app.url("/api/v1/models/m/versions"))
        .header("content-type", "application/json")
        .body(r#"{"artifact_uri":"s3://x","lineage":{"parent_version":"one"}}"#)
        .send()
        .await
        .unwrap();
    expect_error(nested, 422, Some("lineage.parent_version")).await;

    let unknown = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"name":"ok","colour":"red"}"#)
        .send()
        .await
        .unwrap();
    expect_error(unknown, 422, Some("colour")).await;

    let model = json(app.get("/api/v1/models/m").await, 200).await;
    assert_eq!(model["version_count"], 1, "nothing already stored was changed");
    assert_eq!(json(app.get("/api/v1/models").await, 200).await["total"], 1);
}

async fn oversized_body_is_413(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 64 * 1024).await;
    let huge = format!(r#"{{"name":"big","description":"{}"}}"#, "x".repeat(100 * 1024));
    let response = app
        .client
        .post(app.url("/api/v1/models"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 413, None).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(json(app.get("/api/v1/models").await, 200).await["total"], 0);
}
