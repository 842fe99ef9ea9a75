//! Every page as each role sees it, light and dark, on a phone (390 px) and a desktop (1440 px):
//! no page scrolls sideways on the phone, and axe-core finds no serious or critical accessibility
//! violation. The admin's pass saves a screenshot of each page in each of the four looks.

use std::path::PathBuf;

use crate::browser::Browser;
use crate::{DEMO_PASSWORD, sign_in};
use modelgate_tests::{Backend, TestApp};

/// Every page of the console, as a person reaches it by a link or a bookmark.
const PAGES: [(&str, &str); 10] = [
    ("models", "/"),
    ("model", "/models/fraud-detector"),
    ("version", "/models/fraud-detector/versions/6"),
    ("tokens", "/tokens"),
    ("reviews", "/reviews"),
    ("audit", "/audit"),
    ("audit-entry", "/audit/1"),
    ("users", "/admin/users"),
    ("environments", "/admin/environments"),
    ("not-found", "/no/such/page"),
];

/// The four looks: a colour scheme and a viewport width.
const LOOKS: [(&str, &str, u32); 4] =
    [("light", "light", 1440), ("dark", "dark", 1440), ("phone", "light", 390), ("phone-dark", "dark", 390)];

/// axe-core as scripts/bootstrap.sh installs it.
fn axe_source() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (run scripts/bootstrap.sh --tests): {e}", path.display()))
}

/// Shows the page in a colour scheme at a width, as the system and the screen would.
async fn look(browser: &Browser, scheme: &str, width: u32) {
    let metrics = serde_json::json!({ "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600 });
    browser.cdp("Emulation.setDeviceMetricsOverride", metrics).await;
    let media = serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
    browser.cdp("Emulation.setEmulatedMedia", media).await;
}

/// The serious and critical violations axe-core finds on the page, each with up to three elements.
async fn violations(browser: &Browser, axe: &str) -> Vec<String> {
    browser.client.execute(axe, vec![]).await.expect("axe-core loads");
    let run = "return axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }) \
        .then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical') \
        .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' — ' + n.failureSummary).join(' | ')}`));";
    let found = browser.client.execute(run, vec![]).await.expect("axe-core runs");
    serde_json::from_value(found).unwrap_or_default()
}

/// Visits every page as `username` in every look; fails listing each page's sideways scroll and
/// accessibility violations.
async fn every_page_looks_right_as(username: &str, screenshots: bool) {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.demo = true;
        c.demo_password = Some(DEMO_PASSWORD.into());
    })
    .await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let axe = axe_source();
    let mut problems = Vec::new();
    for (name, scheme, width) in LOOKS {
        look(&browser, scheme, width).await;
        c.goto(&app.url("/sign-in")).await.unwrap();
        browser.wait_hydrated().await;
        if name == "light" {
            for v in violations(&browser, &axe).await {
                problems.push(format!("sign-in, {name}: {v}"));
            }
            sign_in(&browser, username, DEMO_PASSWORD).await;
            browser.wait_for("#models").await;
        }
        for (page, path) in PAGES {
            c.goto(&app.url(path)).await.unwrap();
            browser.wait_hydrated().await;
            browser.wait_for("main.page > *").await;
            // A page names itself once its data is in (axe then reports a page that never does).
            for _ in 0..50 {
                let titled = c.execute("return document.title !== '';", vec![]).await.unwrap();
                if titled == serde_json::Value::Bool(true) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let sideways: (u64, u64) = serde_json::from_value(
                c.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await.unwrap(),
            )
            .unwrap();
            if sideways.0 > sideways.1 {
                problems
                    .push(format!("{page}, {name}: the page is {} px wide in a {} px window", sideways.0, sideways.1));
            }
            for v in violations(&browser, &axe).await {
                problems.push(format!("{page}, {name}: {v}"));
            }
            if screenshots {
                browser.screenshot(&format!("look-{page}-{name}")).await;
                if page == "version" {
                    c.execute("document.querySelector('.charts').scrollIntoView(); return null;", vec![])
                        .await
                        .unwrap();
                    browser.screenshot(&format!("look-version-charts-{name}")).await;
                }
            }
        }
    }
    browser.close().await;
    assert!(problems.is_empty(), "{username}: {} problems:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_looks_right_for_the_admin() {
    every_page_looks_right_as("admin", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_looks_right_for_the_operator() {
    every_page_looks_right_as("operator", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_looks_right_for_the_reviewer() {
    every_page_looks_right_as("reviewer", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_looks_right_for_the_compliance_officer() {
    every_page_looks_right_as("compliance", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_looks_right_for_a_viewer() {
    every_page_looks_right_as("viewer", false).await;
}

/// The header's toggle switches from the system's scheme to the other, and the server renders the
/// next page in the one chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_theme_toggle_overrides_the_system_and_is_remembered() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.demo = true).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    look(&browser, "dark", 1440).await;
    c.goto(&app.url("/sign-in")).await.unwrap();
    browser.wait_hydrated().await;
    let theme = "return [document.documentElement.getAttribute('data-theme'), getComputedStyle(document.documentElement).backgroundColor];";
    let before: (Option<String>, String) = serde_json::from_value(c.execute(theme, vec![]).await.unwrap()).unwrap();
    assert_eq!(before.0, None, "the system's scheme until one is chosen");
    browser.wait_for("button.theme-toggle").await.click().await.unwrap();
    let switched: (Option<String>, String) = serde_json::from_value(c.execute(theme, vec![]).await.unwrap()).unwrap();
    assert_eq!(switched.0.as_deref(), Some("light"), "dark system → light");
    assert_ne!(switched.1, before.1, "the page's colours changed");
    c.refresh().await.unwrap();
    browser.wait_hydrated().await;
    let cookie: String = serde_json::from_value(c.execute("return document.cookie;", vec![]).await.unwrap()).unwrap();
    assert!(cookie.contains("modelgate_theme=light"), "{cookie}");
    let page = reqwest::Client::new()
        .get(app.url("/sign-in"))
        .header("cookie", "modelgate_theme=light")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<html lang="en" data-theme="light">"#), "the server renders the chosen scheme");
    let again: (Option<String>, String) = serde_json::from_value(c.execute(theme, vec![]).await.unwrap()).unwrap();
    assert_eq!(again, switched);
    browser.wait_for("button.theme-toggle").await.click().await.unwrap();
    let dark: (Option<String>, String) = serde_json::from_value(c.execute(theme, vec![]).await.unwrap()).unwrap();
    assert_eq!((dark.0.as_deref(), &dark.1), (Some("dark"), &before.1));
    browser.close().await;
}
