//! Health, readiness, metrics, request ids and the OpenAPI document.

use modelgate_tests::{Backend, TestApp, json, on_both_backends, seed_model};

on_both_backends!(
    health_readiness_and_metrics,
    openapi_document_covers_the_core_paths,
    every_response_carries_a_request_id
);

async fn health_readiness_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    seed_model(&app, "m", 1).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains(r#"route="/api/v1/models/{model}/versions""#), "{metrics}");
    app.store.db.close().await;
    assert_eq!(app.get("/readyz").await.status(), 503, "not ready without a database");
}

async fn openapi_document_covers_the_core_paths(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = json(app.get("/api/v1/openapi.json").await, 200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/models",
        "/api/v1/models/{model}",
        "/api/v1/models/{model}/versions",
        "/api/v1/models/{model}/versions/{version}",
        "/api/v1/models/{model}/environments/{environment}",
        "/api/v1/models/{model}/environments/{environment}/deploy",
        "/api/v1/models/{model}/environments/{environment}/history",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["NewVersion"].is_object());
    let page = app.get("/api/v1/docs").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/api/v1/docs/reference.js"));
    assert_eq!(app.get("/api/v1/docs/reference.js").await.status(), 200);
    let missing = app.get("/api/v1/nothing-here").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing, 404).await["error"]["code"], "not_found");
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/healthz", "/api/v1/models", "/api/v1/models/none", "/"] {
        let r = app.get(path).await;
        let id = r.headers().get("x-request-id").unwrap_or_else(|| panic!("no request id on {path}"));
        assert_eq!(id.to_str().unwrap().len(), 36, "a UUID");
    }
}
