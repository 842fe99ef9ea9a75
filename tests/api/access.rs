//! The role matrix: every REST operation (from the OpenAPI document) and every server function
//! (from the server-function registry), called anonymously and as each role. A new endpoint
//! that is missing from the matrix fails this test, so none can be forgotten.

use app::domain::{Permission, Role, Roles, allows};
use modelgate_tests::{Backend, TestApp, digest, json, on_both_backends, seed_model};
use reqwest::{Client, Method};
use serde_json::{Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Callers whose roles grant the permission.
    Needs(Permission),
    /// Any authenticated caller (the operation itself limits what they see or touch).
    AnyCaller,
    /// Only a signed-in person, never an API token.
    SessionOnly,
    /// Anyone, signed in or not (what an outside auditor needs).
    Public,
    /// Readers, and agents of the environment (the matrix's agent serves staging).
    ReadOrServe,
    /// Readers, and agents while the version is live in their environment.
    ReadOrFetchLive,
}

fn rule(method: &str, path: &str) -> Rule {
    use Permission::*;
    use Rule::*;
    match (method, path) {
        (
            "get",
            "/api/v1/models"
            | "/api/v1/models/{model}"
            | "/api/v1/models/{model}/versions"
            | "/api/v1/models/{model}/versions/{version}"
            | "/api/v1/environments"
            | "/api/v1/models/{model}/environments/{environment}"
            | "/api/v1/models/{model}/environments/{environment}/history"
            | "/api/v1/models/{model}/versions/{version}/metrics"
            | "/api/v1/models/{model}/versions/{version}/metrics/{key}"
            | "/api/v1/models/{model}/versions/{version}/health"
            | "/api/v1/models/{model}/versions/{version}/guardrails/{id}/replay"
            | "/api/v1/models/{model}/guardrails"
            | "/api/v1/models/{model}/metrics"
            | "/api/v1/events"
            | "/api/v1/policies"
            | "/api/v1/environments/{environment}/policy"
            | "/api/v1/models/{model}/environments/{environment}/rollback-plan"
            | "/api/v1/rollbacks"
            | "/api/v1/rollbacks/{id}"
            | "/api/v1/models/{model}/environments/{environment}/fleet"
            | "/api/v1/models/{model}/environments/{environment}/state",
        ) => Needs(Read),
        ("get", "/api/v1/models/{model}/environments/{environment}/assignment") => ReadOrServe,
        ("get", "/api/v1/models/{model}/versions/{version}/files") => ReadOrFetchLive,
        ("put", "/api/v1/models/{model}/environments/{environment}/agents/{instance}") => Needs(Serve),
        ("delete", "/api/v1/models/{model}/environments/{environment}/agents/{instance}") => Needs(Deploy),
        ("get", "/api/v1/fleet/public-key") => Public,
        ("put", "/api/v1/environments/{environment}/policy") => Needs(ManageEnvironments),
        // Break glass is for the policy's roles: operators by default.
        (
            "post",
            "/api/v1/models/{model}/environments/{environment}/rollbacks"
            | "/api/v1/models/{model}/environments/{environment}/break-glass"
            | "/api/v1/rollbacks/{id}/cancel",
        ) => Needs(RequestRollbacks),
        (
            "post",
            "/api/v1/rollbacks/{id}/approve" | "/api/v1/rollbacks/{id}/reject" | "/api/v1/rollbacks/{id}/acknowledge",
        ) => Needs(ReviewRollbacks),
        ("get" | "post", "/api/v1/webhooks")
        | ("patch" | "delete", "/api/v1/webhooks/{id}")
        | ("get", "/api/v1/webhooks/{id}/deliveries") => Needs(ManageWebhooks),
        ("post", "/api/v1/models/{model}/versions/{version}/metrics") => Needs(PushMetrics),
        ("post", "/api/v1/models/{model}/guardrails")
        | ("put" | "delete", "/api/v1/models/{model}/guardrails/{id}") => Needs(ManageGuardrails),
        ("post", "/api/v1/models") => Needs(RegisterModels),
        ("post", "/api/v1/models/{model}/versions") => Needs(RegisterVersions),
        ("patch", "/api/v1/models/{model}/versions/{version}") => Needs(EditVersions),
        ("post" | "delete", "/api/v1/models/{model}/versions/{version}/quarantine") => Needs(Quarantine),
        ("post", "/api/v1/environments") => Needs(ManageEnvironments),
        ("post", "/api/v1/models/{model}/environments/{environment}/deploy") => Needs(Deploy),
        ("get" | "post", "/api/v1/users") | ("patch", "/api/v1/users/{username}") => Needs(ManageUsers),
        // The token to revoke belongs to someone else, so only token managers may.
        ("delete", "/api/v1/tokens/{id}") => Needs(ManageTokens),
        ("get", "/api/v1/me" | "/api/v1/tokens") => AnyCaller,
        ("post", "/api/v1/tokens") => SessionOnly,
        (
            "get",
            "/api/v1/audit"
            | "/api/v1/audit/{seq}"
            | "/api/v1/audit/export"
            | "/api/v1/audit/status"
            | "/api/v1/audit/jobs/{id}"
            | "/api/v1/audit/jobs/{id}/file",
        )
        | ("post", "/api/v1/audit/verify" | "/api/v1/audit/checkpoints" | "/api/v1/audit/exports") => Needs(Audit),
        ("get", "/api/v1/audit/public-key" | "/api/v1/audit/checkpoints" | "/api/v1/audit/checkpoints/latest") => {
            Public
        }
        _ => panic!("{method} {path} is not in the role matrix: add it to tests/api/access.rs"),
    }
}

/// A body that passes validation, unique per call where the resource must be new.
fn body(method: &str, path: &str, n: usize) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/api/v1/models") => json!({ "name": format!("created-{n}") }),
        ("post", "/api/v1/models/{model}/versions") => {
            json!({ "artifact_uri": "s3://x", "artifact_digest": digest(3) })
        }
        ("patch", "/api/v1/models/{model}/versions/{version}") => json!({ "description": format!("edit {n}") }),
        ("post", "/api/v1/models/{model}/versions/{version}/quarantine") => json!({ "reason": "matrix" }),
        ("post", "/api/v1/environments") => json!({ "name": format!("env-{n}") }),
        ("post", "/api/v1/models/{model}/environments/{environment}/deploy") => json!({ "version": 1 + n % 2 }),
        ("post", "/api/v1/users") => {
            json!({ "username": format!("user-{n}"), "password": "long enough password", "roles": ["viewer"] })
        }
        ("patch", "/api/v1/users/{username}") => json!({ "display_name": format!("renamed {n}") }),
        ("post", "/api/v1/tokens") => json!({ "name": "matrix", "roles": ["viewer"] }),
        ("post", "/api/v1/models/{model}/versions/{version}/metrics") => {
            json!({ "points": [{ "key": "loss", "value": n as f64 / 10.0 }] })
        }
        ("post", "/api/v1/models/{model}/guardrails") | ("put", "/api/v1/models/{model}/guardrails/{id}") => json!({
            "environment": "production", "metric": "loss", "aggregation": "mean",
            "window": { "points": 5 }, "comparator": "<=", "threshold": 1.0
        }),
        ("put", "/api/v1/environments/{environment}/policy") => {
            json!({ "approvals_required": 1, "approval_ttl_minutes": 60 })
        }
        ("post", "/api/v1/models/{model}/environments/{environment}/rollbacks") => json!({ "reason": "matrix" }),
        ("post", "/api/v1/models/{model}/environments/{environment}/break-glass") => {
            json!({ "justification": "checking who may break glass", "confirm": "m" })
        }
        ("post", "/api/v1/rollbacks/{id}/approve" | "/api/v1/rollbacks/{id}/reject")
        | ("post", "/api/v1/rollbacks/{id}/cancel" | "/api/v1/rollbacks/{id}/acknowledge") => {
            json!({ "comment": "matrix" })
        }
        ("post", "/api/v1/webhooks") => json!({ "url": "http://127.0.0.1:9/hook" }),
        ("patch", "/api/v1/webhooks/{id}") => json!({ "active": false }),
        ("post", "/api/v1/audit/exports") => json!({ "filters": { "model": "m" } }),
        ("put", "/api/v1/models/{model}/environments/{environment}/agents/{instance}") => {
            json!({ "group": "matrix", "counter": 0, "state": "downloading" })
        }
        _ => return None,
    })
}

/// The query an operation needs to be answered at once.
fn query(path: &str) -> &'static str {
    if path.ends_with("/assignment") {
        "?wait=0"
    } else if path.ends_with("/state") {
        "?at=2026-01-01T00:00:00Z"
    } else {
        ""
    }
}

on_both_backends!(every_endpoint_checks_every_role);

async fn every_endpoint_checks_every_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    let mut callers: Vec<(Roles, Client)> = Vec::new();
    for role in Role::ALL {
        callers.push((Roles::from([role]), app.client_as(&format!("as-{}", role.as_str()), &[role]).await));
    }
    json(
        app.post(
            "/api/v1/users",
            &json!({ "username": "target-user", "password": "long enough password", "roles": ["viewer"] }),
        )
        .await,
        201,
    )
    .await;

    let doc = json(app.get("/api/v1/openapi.json").await, 200).await;
    let mut n = 0;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let rule = rule(method, path);
            let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |client: &Client, n: usize, url: String| {
                let mut request = client.request(http_method.clone(), url);
                if let Some(b) = body(method, path, n) {
                    request = request.json(&b);
                }
                request.send()
            };
            let url = |token_id: i64| {
                app.url(
                    &(path
                        .replace("{model}", "m")
                        .replace("{version}", "1")
                        .replace("{environment}", "staging")
                        .replace("{username}", "target-user")
                        .replace("{seq}", "1")
                        .replace("{key}", "loss")
                        .replace("{instance}", "i-1")
                        .replace("{id}", &token_id.to_string())
                        + query(path)),
                )
            };
            // Whether version 1 is live in staging now (the matrix's deploys move it).
            let v1_live = json(app.get("/api/v1/models/m/environments/staging").await, 200).await["version"] == 1;
            // A fresh token of `tester` for each revocation attempt.
            let token_id = fresh_token(&app).await;
            n += 1;
            let anonymous = send(&app.anonymous, n, url(token_id)).await.unwrap();
            let expected = if matches!(rule, Rule::Public) { 200 } else { 401 };
            assert_eq!(anonymous.status(), expected, "anonymous {method} {path}");
            for (roles, client) in &callers {
                n += 1;
                let status = send(client, n, url(token_id)).await.unwrap().status().as_u16();
                let allowed = match rule {
                    Rule::Needs(p) => allows(roles, p),
                    Rule::AnyCaller | Rule::Public => true,
                    Rule::SessionOnly => false,
                    Rule::ReadOrServe => allows(roles, Permission::Read) || allows(roles, Permission::Serve),
                    Rule::ReadOrFetchLive => {
                        allows(roles, Permission::Read) || (allows(roles, Permission::Serve) && v1_live)
                    }
                };
                if allowed {
                    assert!(
                        ![401, 403].contains(&status) && status < 500,
                        "{roles:?} should be able to {method} {path}: {status}"
                    );
                } else {
                    assert_eq!(status, 403, "{roles:?} must be refused {method} {path}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 6 * 20, "checked {checked} role × operation pairs");
}

/// A new API token of the `tester` user; returns its id.
async fn fresh_token(app: &TestApp) -> i64 {
    let user = app.store.clone();
    let token = app::domain::NewToken {
        name: "victim".into(),
        owner: None,
        roles: vec![Role::Operator],
        expires_in_days: None,
        environments: Vec::new(),
    };
    user.bootstrap_token("tester", token).await.unwrap().info.id
}

on_both_backends!(server_functions_refuse_anonymous_callers);

async fn server_functions_refuse_anonymous_callers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 1).await;
    let public = ["/api/sign_in", "/api/sign_out", "/api/current_user", "/api/pending_reviews"];
    let mut checked = 0;
    for (path, _method) in leptos::server_fn::axum::server_fn_paths() {
        let form = [
            ("model", "m"),
            ("name", "m"),
            ("number", "1"),
            ("environment", "staging"),
            ("version", "1"),
            ("reason", "x"),
            ("description", "x"),
            ("tags", "x"),
            ("query[limit]", "10"),
            ("username", "tester"),
            ("display_name", "x"),
            ("password", "long enough password"),
            ("disabled", "true"),
            ("id", "1"),
            ("owner", ""),
            ("expires_in_days", ""),
            ("seq", "1"),
            ("key", "loss"),
            ("axis", "step"),
            ("metric", "loss"),
            ("source", "live"),
            ("aggregation", "mean"),
            ("window", "points"),
            ("window_size", "5"),
            ("comparator", "<="),
            ("threshold", "1"),
            ("kind", "threshold"),
            ("direction", "higher_is_worse"),
            ("tolerance", "10"),
            ("tolerance_kind", "relative"),
            ("test", "sequential"),
            ("min_points", "30"),
            ("confidence", "95"),
            ("severity", "failing"),
            ("to_version", "1"),
            ("justification", "a long enough justification"),
            ("confirm", "m"),
            ("decision", "approve"),
            ("comment", "x"),
            ("approvals_required", "1"),
            ("approval_ttl_minutes", "60"),
            ("starts_at", "2026-01-01T00:00"),
            ("ends_at", "2026-01-02T00:00"),
            ("index", "0"),
            ("url", "http://127.0.0.1:9/hook"),
            ("active", "true"),
            ("at", "2026-01-01T00:00"),
        ];
        let response = app.anonymous.post(app.url(path)).form(&form[..]).send().await.unwrap();
        let status = response.status().as_u16();
        if public.iter().any(|p| path.starts_with(p)) {
            assert!(status < 500, "{path}: {status}");
            continue;
        }
        assert_eq!(status, 401, "anonymous call to {path} must be refused");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "unauthorized", "{path}: {error}");
        checked += 1;
    }
    assert!(checked >= 30, "checked {checked} server functions");
}
