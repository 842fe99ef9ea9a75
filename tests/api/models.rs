//! Registering, listing and reading models.

use futures::future::join_all;
use modelgate_tests::{Backend, TestApp, expect_error, json, on_both_backends, seed_model};
use serde_json::json;

on_both_backends!(
    model_is_registered_and_read_back,
    duplicate_model_name_is_a_conflict_even_when_racing,
    model_names_are_mlflows_and_one_path_segment,
    unknown_model_is_404,
    models_list_filters_sorts_and_paginates,
    models_list_filters_by_the_health_of_live_versions,
);

async fn model_is_registered_and_read_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body =
        json!({ "name": "fraud-detector", "description": "Scores payments", "owner_team": "risk", "tags": ["pci"] });
    let created = json(app.post("/api/v1/models", &body).await, 201).await;
    assert_eq!(created["name"], "fraud-detector");
    assert_eq!(created["version_count"], 0);
    assert_eq!(created["created_at"], "2026-01-01T00:00:00Z");
    let envs: Vec<&str> =
        created["live"].as_array().unwrap().iter().map(|l| l["environment"].as_str().unwrap()).collect();
    assert_eq!(envs, ["staging", "production"]);
    assert!(created["live"][0]["version"].is_null());

    let read = json(app.get("/api/v1/models/fraud-detector").await, 200).await;
    assert_eq!(read["description"], "Scores payments");
    assert_eq!(read["tags"], json!(["pci"]));
}

async fn duplicate_model_name_is_a_conflict_even_when_racing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({ "name": "churn" });
    let results = join_all((0..8).map(|_| app.post("/api/v1/models", &body))).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
    let again = expect_error(app.post("/api/v1/models", &body).await, 409, Some("name")).await;
    assert!(again["error"]["message"].as_str().unwrap().contains("already exists"));
    let list = json(app.get("/api/v1/models").await, 200).await;
    assert_eq!(list["total"], 1);
}

async fn model_names_are_mlflows_and_one_path_segment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for bad in ["", "  ", " leading", "slash/name", "colon:name", "what?", "50%", "..", "x".repeat(257).as_str()] {
        let body = expect_error(app.post("/api/v1/models", &json!({ "name": bad })).await, 422, Some("name")).await;
        assert!(body["error"]["message"].as_str().unwrap().starts_with("name:"), "{body}");
    }
    let list = json(app.get("/api/v1/models").await, 200).await;
    assert_eq!(list["total"], 0, "nothing is stored by a refused request");

    // Case, spaces, dots and any letters, percent-encoded in the path; case-sensitive.
    for name in ["IrisClf", "iris clf v2", "fraud.detector", "Ünïcode (v2)"] {
        json(app.post("/api/v1/models", &json!({ "name": name })).await, 201).await;
        let read = json(app.get(&format!("/api/v1/models/{}", app::domain::percent_encoded(name))).await, 200).await;
        assert_eq!(read["name"], name);
    }
    json(app.post("/api/v1/models", &json!({ "name": "irisclf" })).await, 201).await;
    expect_error(app.get("/api/v1/models/IRISCLF").await, 404, None).await;
}

async fn unknown_model_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = expect_error(app.get("/api/v1/models/nope").await, 404, None).await;
    assert_eq!(body["error"]["code"], "not_found");
    expect_error(app.get("/api/v1/models/nope/versions").await, 404, None).await;
    expect_error(app.get("/api/v1/models/nope/versions/1").await, 404, None).await;
}

async fn models_list_filters_sorts_and_paginates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (name, team, tag) in [("alpha", "risk", "pci"), ("bravo", "growth", "batch"), ("charlie", "risk", "nlp_100%")] {
        json(app.post("/api/v1/models", &json!({ "name": name, "owner_team": team, "tags": [tag] })).await, 201).await;
    }
    seed_model(&app, "delta", 3).await;

    let page = json(app.get("/api/v1/models?limit=2&offset=1&sort=name").await, 200).await;
    assert_eq!(page["total"], 4);
    let names: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bravo", "charlie"]);

    let desc = json(app.get("/api/v1/models?sort=name&order=desc&limit=1").await, 200).await;
    assert_eq!(desc["items"][0]["name"], "delta");

    let by_versions = json(app.get("/api/v1/models?sort=versions&order=desc&limit=1").await, 200).await;
    assert_eq!(by_versions["items"][0]["name"], "delta");
    assert_eq!(by_versions["items"][0]["version_count"], 3);

    let team = json(app.get("/api/v1/models?owner_team=risk").await, 200).await;
    assert_eq!(team["total"], 2);

    let search = json(app.get("/api/v1/models?q=PCI").await, 200).await;
    assert_eq!(search["total"], 1, "search is case-insensitive and matches tags");
    assert_eq!(search["items"][0]["name"], "alpha");

    let wildcard = json(app.get("/api/v1/models?q=100%25").await, 200).await;
    assert_eq!(wildcard["total"], 1, "% in a search is matched literally");

    expect_error(app.get("/api/v1/models?limit=0").await, 422, Some("limit")).await;
    expect_error(app.get("/api/v1/models?limit=abc").await, 422, Some("limit")).await;
    expect_error(app.get("/api/v1/models?sort=bogus").await, 422, Some("sort")).await;
}

/// In the demo, fraud-detector's v6 fails in production and v8 is healthy in staging.
async fn models_list_filters_by_the_health_of_live_versions(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.demo = true).await;
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    let failing = json(app.get("/api/v1/models?health=failing").await, 200).await;
    assert_eq!(names(&failing), ["fraud-detector"]);
    assert_eq!(failing["total"], 1);
    let everyone = json(app.get("/api/v1/models").await, 200).await;
    for health in ["healthy", "warning", "unknown"] {
        let page = json(app.get(&format!("/api/v1/models?health={health}")).await, 200).await;
        // Exactly the models with a live version of that health, as each model reports it.
        let expected: Vec<String> = everyone["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                let live = m["live"].as_array().unwrap();
                live.iter().filter(|l| !l["version"].is_null()).any(|l| {
                    let seen = m["health"].as_array().unwrap().iter().find(|h| h["environment"] == l["environment"]);
                    seen.map_or("unknown", |h| h["health"].as_str().unwrap()) == health
                })
            })
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names(&page), expected, "health={health}");
    }
    let healthy = json(app.get("/api/v1/models?health=healthy&q=fraud").await, 200).await;
    assert_eq!(names(&healthy), ["fraud-detector"], "healthy in staging, with the other filters");
    expect_error(app.get("/api/v1/models?health=sick").await, 422, Some("health")).await;
}
