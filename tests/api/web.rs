//! Web protections: security headers on every kind of response, and CSRF refusal.

use modelgate_tests::{Backend, PASSWORD, TestApp, expect_error, json, on_both_backends};
use serde_json::json;

on_both_backends!(security_headers_are_on_pages_api_and_errors, forged_cross_site_writes_are_refused);

async fn security_headers_are_on_pages_api_and_errors(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.secure_cookies = true).await;
    for path in ["/", "/sign-in", "/api/v1/models", "/api/v1/models/ghost", "/no/such/page", "/healthz", "/api/v1/docs"]
    {
        let client = if path == "/sign-in" { &app.anonymous } else { &app.client };
        let response = client.get(app.url(path)).send().await.unwrap();
        let h = response.headers();
        let csp = h.get("content-security-policy").unwrap_or_else(|| panic!("no CSP on {path}")).to_str().unwrap();
        for directive in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(h["strict-transport-security"].to_str().unwrap().starts_with("max-age="), "{path}");
    }
    let page = app.client.get(app.url("/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    let nonce =
        csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a nonce in the page CSP").to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the CSP nonce");
    let plain = TestApp::spawn(backend).await;
    assert!(plain.get("/healthz").await.headers().get("strict-transport-security").is_none(), "no HSTS without TLS");
}

async fn forged_cross_site_writes_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (cookie, _) = app.sign_in("tester", PASSWORD).await;
    let cookie = cookie.unwrap();
    let body = json!({ "name": "forged" });
    let url = app.url("/api/v1/models");
    let evil = app
        .anonymous
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    let refused = expect_error(evil, 403, None).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("cross-site"));
    let fetch_meta = app
        .anonymous
        .post(&url)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(fetch_meta, 403, None).await;
    let bare = app.anonymous.post(&url).header("cookie", &cookie).json(&body).send().await.unwrap();
    expect_error(bare, 403, None).await;
    // An Authorization header that does not authenticate the request exempts nothing.
    for authorization in ["X y", "Bearer", "Negotiate abc"] {
        let disguised = app
            .anonymous
            .post(&url)
            .header("cookie", &cookie)
            .header("authorization", authorization)
            .header("origin", "https://evil.example")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(disguised, 403, None).await;
    }
    assert_eq!(json(app.get("/api/v1/models").await, 200).await["total"], 0, "nothing was created");

    let same_site = app
        .session_client(&cookie)
        .post(&url)
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    json(same_site, 201).await;
    json(app.post("/api/v1/models", &json!({ "name": "from-a-script" })).await, 201).await;
}
