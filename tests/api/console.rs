//! The console's server-rendered pages: content present before any JavaScript runs, real 404s.

use modelgate_tests::{Backend, TestApp, on_both_backends, seed_model};
use serde_json::json;

on_both_backends!(pages_render_on_the_server, unknown_pages_and_models_are_404);

async fn pages_render_on_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "fraud-detector", 2).await;
    app.post("/api/v1/models/fraud-detector/environments/production/deploy", &json!({ "version": 2, "reason": "go" }))
        .await;

    let list = app.get("/").await;
    assert_eq!(list.status(), 200);
    let html = list.text().await.unwrap();
    assert!(html.contains(r#"data-model="fraud-detector""#), "models list is server-rendered");
    assert!(html.contains("/pkg/modelgate.wasm") || html.contains("/pkg/modelgate.js"), "hydration scripts are linked");

    let model = app.get("/models/fraud-detector").await.text().await.unwrap();
    assert!(model.contains(r#"data-version="2""#) && model.contains(r#"data-version="1""#));
    assert!(model.contains(r#"data-env="production""#));

    let version = app.get("/models/fraud-detector/versions/2").await.text().await.unwrap();
    assert!(version.contains("s3://m/fraud-detector/2"), "artifact URI shown");
}

async fn unknown_pages_and_models_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.get("/no/such/page").await;
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("Not found"));
    let model = app.get("/models/ghost").await;
    assert_eq!(model.status(), 404);
    let html = model.text().await.unwrap();
    assert!(html.contains("model &#x27;ghost&#x27; not found") || html.contains("model 'ghost' not found"), "{html}");
}
