//! Models the registry holds: MLflow 3's logged models through the real `mlflow` client and
//! scikit-learn, their server-computed digests, serving code loading `models:/<name>@<alias>`
//! across a deploy and an approved rollback, and the files a version was made from staying fixed.

use app::domain::Role;
use modelgate_tests::{Backend, TestApp, bearer_client, json, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::mlflow::{artifact_call, call, client_script, mlflow_error};

on_both_backends!(
    the_mlflow_quickstart_registers_a_model_that_serving_loads_through_deploys_and_rollbacks,
    mlflow_paths_answer_mlflow_errors_even_before_a_handler
);

async fn predictions(app: &TestApp, token: &str, model: &str) -> Value {
    let out =
        client_script(app, "models.py", &["predict", model, "production"], &[("MLFLOW_TRACKING_TOKEN", token)]).await;
    out["predictions"].clone()
}

async fn the_mlflow_quickstart_registers_a_model_that_serving_loads_through_deploys_and_rollbacks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let trainer = modelgate_tests::create_user(&app.store, "trainer", &[Role::Operator]).await;
    let out = client_script(&app, "models.py", &["train", "iris-clf"], &[("MLFLOW_TRACKING_TOKEN", &trainer)]).await;
    let (first, second) = (&out["first"], &out["second"]);
    assert_eq!((first["version"].as_str(), second["version"].as_str()), (Some("1"), Some("2")), "{out}");
    assert_eq!(out["again"]["version"], 3, "register_model(runs:/…) registered the same logged model: {out}");
    assert_eq!(out["again"]["source"], format!("models:/{}", first["model_id"].as_str().unwrap()));

    // Each version carries the digest the server computed over its logged model's files — the one
    // the client recomputes from what it downloads — and is deployable without any manual tag.
    for (number, logged) in [(1, first), (2, second), (3, first)] {
        let version = json(app.get(&format!("/api/v1/models/iris-clf/versions/{number}")).await, 200).await;
        assert_eq!(version["artifact_digest"], logged["digest"], "version {number}: {version}");
        let experiment_and_model = version["artifact_root"].as_str().unwrap();
        assert!(experiment_and_model.ends_with(&format!("/models/{}/artifacts", logged["model_id"].as_str().unwrap())));
        assert_eq!(version["lineage"]["run_id"], logged["run_id"], "the run that made the model");
    }
    assert!(first["files"].as_i64().unwrap() >= 5, "MLmodel, the model, its environment: {out}");
    let query = json!({"name": "iris-clf", "version": "2"});
    let (_, uri) = call(&app.client, &app, Method::GET, "model-versions/get-download-uri", query).await;
    let root = json(app.get("/api/v1/models/iris-clf/versions/2").await, 200).await["artifact_root"].clone();
    assert_eq!(uri["artifact_uri"], format!("mlflow-artifacts:/{}", root.as_str().unwrap()));

    // Serving code loads whatever is live in production: deployed, replaced, rolled back.
    json(app.post("/api/v1/models/iris-clf/environments/production/deploy", &json!({"version": 1})).await, 201).await;
    let server = modelgate_tests::create_user(&app.store, "server", &[Role::Viewer]).await;
    assert_eq!(predictions(&app, &server, "iris-clf").await, json!([0, 0, 0]), "the logistic regression");
    json(app.post("/api/v1/models/iris-clf/environments/production/deploy", &json!({"version": 2})).await, 201).await;
    assert_eq!(predictions(&app, &server, "iris-clf").await, json!([2, 2, 2]), "the constant model");
    let operator = bearer_client(&modelgate_tests::create_user(&app.store, "oncall", &[Role::Operator]).await);
    let reviewer = bearer_client(&modelgate_tests::create_user(&app.store, "lead", &[Role::Reviewer]).await);
    let rollbacks = app.url("/api/v1/models/iris-clf/environments/production/rollbacks");
    let request = operator.post(rollbacks).json(&json!({"reason": "answers 2 to everything"})).send().await.unwrap();
    let request = json(request, 201).await;
    let approve = app.url(&format!("/api/v1/rollbacks/{}/approve", request["id"]));
    json(reviewer.post(approve).json(&json!({})).send().await.unwrap(), 200).await;
    assert_eq!(predictions(&app, &server, "iris-clf").await, json!([0, 0, 0]), "rolled back to version 1");

    // A finalized model's files, and the files a version was made from, never change.
    let file = format!("/{}/MLmodel", root.as_str().unwrap());
    let refused = artifact_call(&app.client, &app, Method::PUT, &file, b"flavors: {}".to_vec()).await;
    assert!(mlflow_error(refused, "RESOURCE_CONFLICT", 409).contains("finalized"));
    let refused = artifact_call(&app.client, &app, Method::DELETE, &file, Vec::new()).await;
    assert!(mlflow_error(refused, "RESOURCE_CONFLICT", 409).contains("finalized"));

    // A client-supplied digest that disagrees with the server's is refused; nothing is registered.
    let wrong = json!({"name": "iris-clf", "source": format!("models:/{}", first["model_id"].as_str().unwrap()),
        "tags": [{"key": "modelgate.artifact_digest", "value": format!("sha256:{}", "ab".repeat(32))}]});
    let refused = call(&app.client, &app, Method::POST, "model-versions/create", wrong).await;
    assert!(mlflow_error(refused, "INVALID_PARAMETER_VALUE", 400).contains("the digest the server computed"));
    let model = json(app.get("/api/v1/models/iris-clf").await, 200).await;
    assert_eq!(model["version_count"], 3, "{model}");

    // The logged models are audited: created, finalized, tagged by the client.
    let page = json(app.get("/api/v1/audit?action=logged_model.create").await, 200).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2, "{page}");
    let page = json(app.get("/api/v1/audit?action=logged_model.update").await, 200).await;
    assert!(page["entries"].as_array().unwrap().len() >= 2, "{page}");
    app.stop().await;
}

async fn mlflow_paths_answer_mlflow_errors_even_before_a_handler(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stranger = bearer_client("mg_not-a-token");
    let refused = call(&stranger, &app, Method::GET, "experiments/get", json!({"experiment_id": "0"})).await;
    mlflow_error(refused, "UNAUTHENTICATED", 401);
    for path in ["/api/3.0/mlflow/traces/search", "/ajax-api/2.0/mlflow/runs/search", "/api/2.0/mlflow/nope"] {
        let response = app.client.post(app.url(path)).json(&json!({})).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON, not the console's HTML");
        assert_eq!((status, body["error_code"].as_str()), (404, Some("ENDPOINT_NOT_FOUND")), "{path}: {body}");
    }
    let info = json(app.get("/api/3.0/mlflow/server-info").await, 200).await;
    assert_eq!(info["multipart_uploads_enabled"], false);
    app.stop().await;
}
