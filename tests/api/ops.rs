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

/// Every `$ref` of a JSON value, as `(where, target)`.
fn refs(value: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner.as_str()) {
                    ("$ref", Some(target)) => out.push((at.to_string(), target.to_string())),
                    _ => refs(inner, &format!("{at}/{key}"), out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                refs(inner, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_defines_every_schema_it_references() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = json(app.get("/api/v1/openapi.json").await, 200).await;
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(found.len() > 50, "{} references", found.len());
    let undefined: Vec<_> = found
        .iter()
        .filter(|(_, target)| {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
            !doc["components"]["schemas"][name].is_object()
        })
        .collect();
    assert!(undefined.is_empty(), "undefined schemas: {undefined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_json_errors_naming_the_field_and_private_answers_are_not_cached() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    seed_model(&app, "m", 1).await;
    for (url, field) in [
        ("/api/v1/rollbacks/9223372036854775808", "path"),
        ("/api/v1/models?offset=9223372036854775808", "offset"),
        ("/api/v1/models/m/versions?offset=18446744073709551616", "offset"),
        ("/api/v1/rollbacks?offset=-1", "offset"),
    ] {
        let response = app.get(url).await;
        assert_eq!(response.status(), 422, "{url}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{url}");
        let body = json(response, 422).await;
        assert_eq!(body["error"]["details"]["field"], field, "{url}: {body}");
    }
    let private = app.get("/api/v1/models").await;
    assert_eq!(private.headers()["cache-control"], "no-store", "an authenticated answer");
    let public = app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap();
    assert!(public.headers().get("cache-control").is_none_or(|v| v != "no-store"), "a public one may be cached");
}
