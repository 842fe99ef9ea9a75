//! Registering versions: server-assigned numbers, immutability, lineage, editing and quarantine.

use futures::future::join_all;
use modelgate_tests::{Backend, TestApp, digest, expect_error, json, on_both_backends, seed_model};
use serde_json::json;

on_both_backends!(
    version_numbers_are_assigned_by_the_server_and_never_reused,
    concurrent_registrations_get_distinct_numbers,
    version_keeps_artifact_and_lineage,
    digest_is_validated_and_normalised,
    parent_version_must_exist_and_failure_leaves_no_trace,
    only_description_and_tags_are_editable,
    quarantine_blocks_and_release_unblocks,
    bad_version_in_path_names_the_field,
);

async fn version_numbers_are_assigned_by_the_server_and_never_reused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    let list = json(app.get("/api/v1/models/m/versions").await, 200).await;
    let numbers: Vec<i64> = list["items"].as_array().unwrap().iter().map(|v| v["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1], "newest first");
    let asc = json(app.get("/api/v1/models/m/versions?order=asc&limit=2").await, 200).await;
    assert_eq!(asc["items"][0]["number"], 1);
    assert_eq!(asc["total"], 3);
    let body = json!({ "artifact_uri": "s3://m/4", "number": 1 });
    expect_error(app.post("/api/v1/models/m/versions", &body).await, 422, Some("number")).await;
    let next = json(app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "s3://m/4" })).await, 201).await;
    assert_eq!(next["number"], 4);
}

async fn concurrent_registrations_get_distinct_numbers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 0).await;
    let body = json!({ "artifact_uri": "s3://m/x", "artifact_digest": digest(1) });
    let responses = join_all((0..12).map(|_| app.post("/api/v1/models/m/versions", &body))).await;
    let mut numbers = Vec::new();
    for r in responses {
        numbers.push(json(r, 201).await["number"].as_i64().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
}

async fn version_keeps_artifact_and_lineage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let body = json!({
        "artifact_uri": "s3://bucket/m/2/model.onnx",
        "artifact_digest": digest(9),
        "framework": "onnx",
        "parameters": { "lr": "0.01", "depth": "6" },
        "lineage": {
            "run_id": "run-42", "run_link": "https://mlflow.example.com/runs/42",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "dataset_ref": "s3://data/snap.parquet", "dataset_hash": "sha256:ff", "parent_version": 1
        },
        "description": "retrained", "tags": ["candidate"]
    });
    let created = json(app.post("/api/v1/models/m/versions", &body).await, 201).await;
    let read = json(app.get("/api/v1/models/m/versions/2").await, 200).await;
    assert_eq!(created, read, "what registration returns is what is stored");
    assert_eq!(read["lineage"]["parent_version"], 1);
    assert_eq!(read["parameters"]["lr"], "0.01");
    assert_eq!(read["created_by"], "tester (token tests)");
}

async fn digest_is_validated_and_normalised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 0).await;
    let upper = "AB".repeat(32);
    let v = json(
        app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "s3://x", "artifact_digest": upper })).await,
        201,
    )
    .await;
    assert_eq!(v["artifact_digest"], format!("sha256:{}", "ab".repeat(32)));
    for bad in ["md5:abc", "sha256:123", "zz".repeat(32).as_str()] {
        let body = json!({ "artifact_uri": "s3://x", "artifact_digest": bad });
        expect_error(app.post("/api/v1/models/m/versions", &body).await, 422, Some("artifact_digest")).await;
    }
    expect_error(
        app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "no-scheme" })).await,
        422,
        Some("artifact_uri"),
    )
    .await;
    expect_error(app.post("/api/v1/models/m/versions", &json!({})).await, 422, Some("artifact_uri")).await;
}

async fn parent_version_must_exist_and_failure_leaves_no_trace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let body = json!({ "artifact_uri": "s3://x", "lineage": { "parent_version": 7 } });
    expect_error(app.post("/api/v1/models/m/versions", &body).await, 422, Some("lineage.parent_version")).await;
    let bad_commit = json!({ "artifact_uri": "s3://x", "lineage": { "git_commit": "not-hex" } });
    expect_error(app.post("/api/v1/models/m/versions", &bad_commit).await, 422, Some("lineage.git_commit")).await;
    let next = json(app.post("/api/v1/models/m/versions", &json!({ "artifact_uri": "s3://x" })).await, 201).await;
    assert_eq!(next["number"], 2, "the refused registration rolled back entirely");
    assert_eq!(json(app.get("/api/v1/models/m").await, 200).await["version_count"], 2);
}

async fn only_description_and_tags_are_editable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let before = json(app.get("/api/v1/models/m/versions/1").await, 200).await;
    let edited = json(
        app.patch("/api/v1/models/m/versions/1", &json!({ "description": "better", "tags": ["a", "b"] })).await,
        200,
    )
    .await;
    assert_eq!(edited["description"], "better");
    assert_eq!(edited["tags"], json!(["a", "b"]));
    assert_eq!(edited["artifact_uri"], before["artifact_uri"]);
    let tags_only = json(app.patch("/api/v1/models/m/versions/1", &json!({ "tags": [] })).await, 200).await;
    assert_eq!(tags_only["description"], "better", "absent fields stay");
    expect_error(
        app.patch("/api/v1/models/m/versions/1", &json!({ "artifact_uri": "s3://evil" })).await,
        422,
        Some("artifact_uri"),
    )
    .await;
    expect_error(app.patch("/api/v1/models/m/versions/1", &json!({ "tags": [""] })).await, 422, Some("tags[0]")).await;
    let after = json(app.get("/api/v1/models/m/versions/1").await, 200).await;
    assert_eq!(after["artifact_uri"], before["artifact_uri"]);
    assert_eq!(after["artifact_digest"], before["artifact_digest"]);
}

async fn quarantine_blocks_and_release_unblocks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    expect_error(
        app.post("/api/v1/models/m/versions/2/quarantine", &json!({ "reason": " " })).await,
        422,
        Some("reason"),
    )
    .await;
    let q = json(app.post("/api/v1/models/m/versions/2/quarantine", &json!({ "reason": "bias" })).await, 200).await;
    assert_eq!(q["quarantine"]["reason"], "bias");
    assert_eq!(q["quarantine"]["by"], "tester (token tests)");
    expect_error(app.post("/api/v1/models/m/versions/2/quarantine", &json!({ "reason": "again" })).await, 409, None)
        .await;
    let refused = expect_error(
        app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 2 })).await,
        409,
        None,
    )
    .await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("quarantined"));
    let released = json(app.delete("/api/v1/models/m/versions/2/quarantine").await, 200).await;
    assert!(released["quarantine"].is_null());
    expect_error(app.delete("/api/v1/models/m/versions/2/quarantine").await, 409, None).await;
    json(app.post("/api/v1/models/m/environments/staging/deploy", &json!({ "version": 2 })).await, 201).await;
}

async fn bad_version_in_path_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    expect_error(app.get("/api/v1/models/m/versions/abc").await, 422, Some("version")).await;
    expect_error(app.get("/api/v1/models/m/versions/0").await, 422, Some("version")).await;
    expect_error(app.get("/api/v1/models/m/versions/99").await, 404, None).await;
}

on_both_backends!(an_idempotent_write_answered_with_more_than_a_mebibyte_is_replayed_byte_for_byte);

/// A version with 300 parameters of 5,000 characters is answered with about 1.5 MB; its retry
/// under the same key gets those bytes again and registers nothing more.
async fn an_idempotent_write_answered_with_more_than_a_mebibyte_is_replayed_byte_for_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "big", 0).await;
    let parameters: serde_json::Map<String, serde_json::Value> =
        (0..300).map(|i| (format!("p{i:03}"), json!("x".repeat(5_000)))).collect();
    let body = json!({ "artifact_uri": "s3://big/1", "artifact_digest": digest(1), "parameters": parameters });
    let send = || {
        app.client.post(app.url("/api/v1/models/big/versions")).header("Idempotency-Key", "big-one").json(&body).send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.unwrap();
    assert!(first.len() > 1 << 20, "the answer is over a mebibyte: {}", first.len());
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first, "the same bytes");
    assert_eq!(json(app.get("/api/v1/models/big").await, 200).await["version_count"], 1, "registered once");
}
