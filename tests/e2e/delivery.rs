//! What the browser downloads: the console's files compressed and kept for good, so a first visit
//! to the models list stays under 450 KB and a repeat visit under 30 KB.

use crate::{DEMO_PASSWORD, demo_console, sign_in};

/// The budgets, in bytes over the wire (headers included).
const FIRST_VISIT: u64 = 450_000;
const REPEAT_VISIT: u64 = 30_000;
const MODEL_PAGE_FIRST_VISIT: u64 = 700_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_list_downloads_within_its_budget_first_and_again() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    c.goto(&app.url("/sign-in")).await.unwrap();
    browser.wait_hydrated().await;
    sign_in(&browser, "operator", DEMO_PASSWORD).await;
    browser.wait_for("#models").await;

    // Signed in, with an empty cache: the models list as a returning user opens it after a release.
    browser.cdp("Network.clearBrowserCache", serde_json::json!({})).await;
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    browser.wait_for("#models tbody tr").await;
    let first = browser.transferred().await;
    let total: u64 = first.iter().map(|(_, bytes)| bytes).sum();
    assert!(total <= FIRST_VISIT, "first visit: {total} bytes over the wire, budget {FIRST_VISIT}: {first:#?}");
    let wasm = first.iter().find(|(path, _)| path.ends_with("/modelgate.wasm")).expect("the bundle was fetched");
    assert!(wasm.1 < 600_000, "the WASM came compressed: {wasm:?}");
    assert!(first[0].1 > 0 && first.len() >= 4, "the document and its files were measured: {first:?}");

    // Again: the files come from the cache without a request; only the page itself travels.
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    browser.wait_for("#models tbody tr").await;
    let repeat = browser.transferred().await;
    let total: u64 = repeat.iter().map(|(_, bytes)| bytes).sum();
    assert!(total <= REPEAT_VISIT, "repeat visit: {total} bytes over the wire, budget {REPEAT_VISIT}: {repeat:#?}");
    let cached = repeat.iter().filter(|(path, bytes)| path.contains("/pkg/") && *bytes == 0).count();
    assert!(cached >= 3, "the console's files came from the cache: {repeat:#?}");
    println!("models list: first visit {first:?}, repeat {repeat:?}");

    // The model page, a lazy route, opened first with an empty cache: the bundle, its chunk and the
    // chunks it shares with other pages.
    browser.cdp("Network.clearBrowserCache", serde_json::json!({})).await;
    c.goto(&app.url("/models/fraud-detector")).await.unwrap();
    browser.wait_hydrated().await;
    browser.wait_for(r#"article[data-env="production"]"#).await;
    let model = browser.transferred().await;
    let total: u64 = model.iter().map(|(_, bytes)| bytes).sum();
    println!("model page, first visit: {total} bytes in {} requests", model.len());
    assert!(total <= MODEL_PAGE_FIRST_VISIT, "model page: {total} bytes, budget {MODEL_PAGE_FIRST_VISIT}: {model:#?}");
    browser.close().await;
}

/// What is made per request is compressed for a client that accepts it; the console's files go out
/// in the form compressed at build time and are kept for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_and_the_console_files_kept_for_good() {
    let app = modelgate_tests::TestApp::spawn_with(modelgate_tests::Backend::Sqlite, |c| c.demo = true).await;
    let token = modelgate_tests::create_user(&app.store, "reader", &[app::domain::Role::Viewer]).await;
    let client = reqwest::Client::new();
    let get = |path: &str, encodings: &'static str| {
        client.get(app.url(path)).bearer_auth(&token).header("accept-encoding", encodings).send()
    };
    // A day of live latency as CSV: brotli when asked for, as it is otherwise.
    let csv = "/api/v1/models/fraud-detector/versions/6/metrics/latency_ms.csv";
    let squeezed = get(csv, "br, gzip").await.unwrap();
    assert_eq!(squeezed.headers()["content-encoding"], "br");
    let squeezed = squeezed.bytes().await.unwrap().len();
    let plain = get(csv, "identity").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap().len();
    assert!(squeezed * 3 < plain, "a metric export compresses: {squeezed} of {plain} bytes");
    let page = get("/sign-in", "gzip").await.unwrap();
    assert_eq!(page.headers()["content-encoding"], "gzip");

    // The page names the sealed directory; its bundle goes out as the brotli file beside it.
    let html = get("/sign-in", "identity").await.unwrap().text().await.unwrap();
    let bundle = html.split('"').find(|s| s.starts_with("/pkg/") && s.ends_with("/modelgate.wasm")).expect(&html);
    let id = bundle.trim_start_matches("/pkg/").trim_end_matches("/modelgate.wasm");
    assert_eq!(id, std::fs::read_to_string(modelgate_tests::site_root().join("build-id")).unwrap().trim());
    let wasm = get(bundle, "gzip, deflate, br").await.unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-encoding"], "br");
    assert_eq!(wasm.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(wasm.headers()["vary"], "accept-encoding");
    let on_disk = std::fs::metadata(modelgate_tests::site_root().join(format!("pkg/{id}/modelgate.wasm.br"))).unwrap();
    assert_eq!(wasm.bytes().await.unwrap().len() as u64, on_disk.len());
    let missing = get(&format!("/pkg/{id}/nothing.wasm"), "br").await.unwrap();
    assert!(missing.headers().get("cache-control").is_none(), "a miss is not kept");
}
