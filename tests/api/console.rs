//! The console's server-rendered pages: content present before any JavaScript runs, real 404s,
//! and its script and style files served whole.

use futures::StreamExt;
use modelgate_tests::{Backend, TestApp, on_both_backends, sealed_site, seed_model};
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
    let (pkg, _) = sealed_site();
    assert!(html.contains(&format!("{pkg}/modelgate.js")), "hydration scripts are linked");

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

/// Every script and style file of the built console comes back whole with 200 while not-found
/// pages render beside it: a file once took the 404 of a page rendered at the same time, and the
/// browser's import of the WASM glue failed, leaving the console unhydrated. The icon browsers ask
/// for is the brand mark, not a not-found page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_and_icon_are_served_whole_while_not_found_pages_render() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (served_at, pkg) = sealed_site();
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&pkg)
        .expect("the built console (scripts/build.sh) is in target/site")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".js") || name.ends_with(".css"))
        .map(|name| {
            let bytes = std::fs::read(pkg.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    assert!(
        files.iter().any(|(name, _)| name == "modelgate.js"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let served_at = &served_at;
    let requests = (0..400).map(|i| {
        let app = &app;
        let file = &files[i % files.len()];
        async move {
            let page = app.client.get(app.url(&format!("/no/such/page/{i}"))).send().await.unwrap();
            assert_eq!(page.status(), 404);
            let response = app.anonymous.get(app.url(&format!("{served_at}/{}", file.0))).send().await.unwrap();
            assert_eq!(response.status(), 200, "{served_at}/{} (request {i})", file.0);
            assert!(response.bytes().await.unwrap() == file.1, "{served_at}/{} came back whole", file.0);
        }
    });
    futures::stream::iter(requests).buffer_unordered(16).collect::<Vec<()>>().await;

    let icon = app.anonymous.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!((icon.status().as_u16(), icon.headers()["content-type"].to_str().unwrap()), (200, "image/svg+xml"));
    assert!(icon.text().await.unwrap().starts_with("<svg"));
}
