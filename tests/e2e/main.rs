//! End-to-end in a real headless Chromium (Debian's, through chromedriver): the console as a
//! person uses it. Needs the built site (`scripts/build.sh`, which `scripts/test.sh` runs).
//! Screenshots of each screen are written to `target/screenshots/`.

mod browser;
mod comparisons;
mod delivery;
mod keyboard;
mod looks;

use browser::Browser;
use fantoccini::Locator;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use modelgate_tests::{Backend, TestApp, json};

const DEMO_PASSWORD: &str = "demo-password-for-e2e";

/// Fills in and submits the sign-in form.
async fn sign_in(browser: &Browser, username: &str, password: &str) {
    let form = browser.wait_for("#sign-in").await;
    for (field, value) in [("username", username), ("password", password)] {
        let input = form.find(Locator::Css(&format!("input[name=\"{field}\"]"))).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    form.find(Locator::Css("button[type=\"submit\"]")).await.unwrap().click().await.unwrap();
}

/// The console with the demo data set (every demo user's password is [`DEMO_PASSWORD`]) and a
/// fresh browser.
async fn demo_console() -> (TestApp, Browser) {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.demo = true;
        c.demo_password = Some(DEMO_PASSWORD.into());
    })
    .await;
    (app, Browser::start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_navigates_deploys_and_edits_in_a_real_browser() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;

    // Anonymous visitors land on the sign-in page; a wrong password is refused there.
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    assert!(c.current_url().await.unwrap().as_str().contains("/sign-in?next=%2F"));
    browser.screenshot("sign-in").await;
    sign_in(&browser, "operator", "not the password").await;
    let refused = browser.text_of("#sign-in .form-note.err").await;
    assert_eq!(refused, "wrong username or password");
    sign_in(&browser, "operator", DEMO_PASSWORD).await;

    // Models list: server-rendered, then hydrated.
    browser.wait_for("#models").await;
    browser.wait_hydrated().await;
    let whoami = browser.text_of(".whoami").await;
    assert!(whoami.contains("Otto Operator") && whoami.contains("operator"), "{whoami}");
    assert!(browser.page_errors().await.is_empty(), "hydration logged errors: {:#?}", browser.page_errors().await);
    let rows = c.find_all(Locator::Css("#models tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 4, "the four demo models are listed");
    let fraud_row = c.find(Locator::Css(r#"tr[data-model="fraud-detector"]"#)).await.unwrap();
    assert!(fraud_row.text().await.unwrap().contains("production"));
    // Its key metric across versions, as a sparkline named for screen readers.
    let spark = fraud_row.find(Locator::Css(".metric-cell svg.sparkline")).await.unwrap();
    let label = spark.attr("aria-label").await.unwrap().unwrap_or_default();
    assert!(label.contains(" at v1, ") && label.contains(" at v"), "{label}");
    browser.screenshot("models").await;

    // Search narrows the list.
    let search = c.find(Locator::Css(r#"input[name="q"]"#)).await.unwrap();
    search.send_keys("forecast\n").await.unwrap();
    browser
        .eventually("search shows only demand-forecast", || async {
            let rows = c.find_all(Locator::Css("#models tbody tr")).await.ok()?;
            let first = rows.first()?.attr("data-model").await.ok()??;
            (rows.len() == 1 && first == "demand-forecast").then_some(())
        })
        .await;

    // The health filter keeps the models with a failing live version.
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    c.find(Locator::Css(r#"select[name="health"]"#)).await.unwrap().select_by_value("failing").await.unwrap();
    c.find(Locator::Css(r#"form.search button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser
        .eventually("the list shows only the failing fraud-detector", || async {
            let rows = c.find_all(Locator::Css("#models tbody tr")).await.ok()?;
            let first = rows.first()?.attr("data-model").await.ok()??;
            let url = c.current_url().await.ok()?;
            (rows.len() == 1 && first == "fraud-detector" && url.as_str().contains("health=failing")).then_some(())
        })
        .await;

    // Client-side navigation: a marker on `window` survives only if the page did not reload.
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    c.execute("window.__stillHere = true; return null;", vec![]).await.unwrap();
    c.find(Locator::Css(r#"tr[data-model="fraud-detector"] a"#)).await.unwrap().click().await.unwrap();
    browser.wait_for(r#"article[data-env="staging"]"#).await;
    let kept = c.execute("return window.__stillHere === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "router navigated without a full reload");

    // Hydration proof: the versions filter only works once the WASM runs.
    let filter = c.find(Locator::Css("input.filter")).await.unwrap();
    filter.send_keys("v3").await.unwrap();
    browser
        .eventually("filter hides non-matching versions", || async {
            let hidden = c.find(Locator::Css(r#"tr[data-version="5"]"#)).await.ok()?.is_displayed().await.ok()?;
            let shown = c.find(Locator::Css(r#"tr[data-version="3"]"#)).await.ok()?.is_displayed().await.ok()?;
            (!hidden && shown).then_some(())
        })
        .await;
    filter.clear().await.unwrap();

    // Deploy through the UI: staging moves from v8 to v5.
    let staging = r#"article[data-env="staging"]"#;
    let live_before = c.find(Locator::Css(&format!("{staging} .live-version"))).await.unwrap().text().await.unwrap();
    assert_eq!(live_before.trim(), "v8");
    let select = c.find(Locator::Css(&format!("{staging} select[name=\"version\"]"))).await.unwrap();
    select.select_by_value("5").await.unwrap();
    c.find(Locator::Css(&format!("{staging} input[name=\"reason\"]")))
        .await
        .unwrap()
        .send_keys("e2e: back to v5")
        .await
        .unwrap();
    c.find(Locator::Css(&format!("{staging} button[type=\"submit\"]"))).await.unwrap().click().await.unwrap();
    browser
        .eventually("staging shows v5 live", || async {
            let text = c.find(Locator::Css(&format!("{staging} .live-version"))).await.ok()?.text().await.ok()?;
            (text.trim() == "v5").then_some(())
        })
        .await;
    let live = json(app.get("/api/v1/models/fraud-detector/environments/staging").await, 200).await;
    assert_eq!(live["version"], 5, "the deploy reached the database");
    let history = c.find(Locator::Css("#history li")).await.unwrap().text().await.unwrap();
    assert!(history.contains("v8 → v5") && history.contains("e2e: back to v5"), "{history}");
    browser.screenshot("model").await;

    // Version page: quarantine banner on v7, editable description on v5.
    c.goto(&app.url("/models/fraud-detector/versions/7")).await.unwrap();
    browser.wait_hydrated().await;
    let banner = c.find(Locator::Css(".banner.danger")).await.unwrap().text().await.unwrap();
    assert!(banner.contains("label leakage"), "{banner}");
    browser.screenshot("version-quarantined").await;

    c.goto(&app.url("/models/fraud-detector/versions/5")).await.unwrap();
    browser.wait_hydrated().await;
    let description = c.find(Locator::Css(r#"#edit-version textarea[name="description"]"#)).await.unwrap();
    description.clear().await.unwrap();
    description.send_keys("Known good: preferred rollback target").await.unwrap();
    c.find(Locator::Css(r#"#edit-version button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser
        .eventually("the edit is saved", || async {
            let note = c.find(Locator::Css(".form-note.ok")).await.ok()?.text().await.ok()?;
            (note == "Saved.").then_some(())
        })
        .await;
    let v5 = json(app.get("/api/v1/models/fraud-detector/versions/5").await, 200).await;
    assert_eq!(v5["description"], "Known good: preferred rollback target");
    browser.screenshot("version").await;

    // Signing out ends the session: pages lead back to the sign-in page.
    c.goto(&app.url("/")).await.unwrap();
    browser.wait_hydrated().await;
    browser.wait_for(".sign-out button").await.click().await.unwrap();
    browser.wait_for("#sign-in").await;
    c.goto(&app.url("/models/fraud-detector")).await.unwrap();
    browser.wait_for("#sign-in").await;
    sign_in(&browser, "viewer", DEMO_PASSWORD).await;
    browser.wait_for(r#"article[data-env="staging"]"#).await;
    let deploy_forms = c.find_all(Locator::Css(".deploy-form")).await.unwrap();
    assert!(deploy_forms.is_empty(), "a viewer is not offered the deploy action");
    browser.screenshot("model-as-viewer").await;
    // A crafted deploy from the viewer's own browser session is refused by the server.
    let crafted = c
        .execute_async(
            "const done = arguments[0];
             fetch('/api/v1/models/fraud-detector/environments/staging/deploy', {
               method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ version: 4 }),
             }).then(r => done(r.status)).catch(e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(crafted, serde_json::json!(403), "the server refuses a viewer's deploy");
    let live = json(app.get("/api/v1/models/fraud-detector/environments/staging").await, 200).await;
    assert_eq!(live["version"], 5, "nothing changed");

    // Reviewers and compliance officers read everything and are offered no change.
    for role in ["reviewer", "compliance"] {
        browser.wait_for(".sign-out button").await.click().await.unwrap();
        browser.wait_for("#sign-in").await;
        sign_in(&browser, role, DEMO_PASSWORD).await;
        browser.wait_for("#models").await;
        c.goto(&app.url("/models/fraud-detector/versions/5")).await.unwrap();
        browser.wait_hydrated().await;
        browser.wait_for("#lineage").await;
        let offered = c.find_all(Locator::Css("form#edit-version, .deploy-form, button.danger")).await.unwrap();
        assert!(offered.is_empty(), "{role} is offered no change");
        let nav = c.find(Locator::Css(".topnav")).await.unwrap().text().await.unwrap();
        assert!(!nav.contains("Users"), "{role} sees no user administration");
        let whoami = c.find(Locator::Css(".whoami")).await.unwrap().text().await.unwrap();
        assert!(whoami.contains(role), "{whoami}");
    }
    browser.screenshot("version-as-compliance").await;

    // An admin adds a user, then creates an API token that is shown once, and revokes it.
    browser.wait_for(".sign-out button").await.click().await.unwrap();
    browser.wait_for("#sign-in").await;
    sign_in(&browser, "admin", DEMO_PASSWORD).await;
    browser.wait_for("#models").await;
    c.goto(&app.url("/admin/users")).await.unwrap();
    browser.wait_hydrated().await;
    let form = browser.wait_for("#create-user").await;
    for (field, value) in
        [("username", "newbie"), ("display_name", "New Colleague"), ("password", "a sufficiently long one")]
    {
        form.find(Locator::Css(&format!("input[name=\"{field}\"]"))).await.unwrap().send_keys(value).await.unwrap();
    }
    form.find(Locator::Css(r#"input[name="roles[viewer]"]"#)).await.unwrap().click().await.unwrap();
    form.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser.wait_for(r#"tr[data-user="newbie"]"#).await;
    // The form empties itself after the user was added, so a second click cannot add them again.
    browser
        .eventually("the add-user form is empty again", || async {
            let name = c
                .find(Locator::Css(r#"#create-user input[name="username"]"#))
                .await
                .ok()?
                .prop("value")
                .await
                .ok()??;
            name.is_empty().then_some(())
        })
        .await;
    // Disabling asks first: keeping the user changes nothing; confirming disables them.
    let newbie = r#"tr[data-user="newbie"]"#;
    browser.click_button(newbie, "Disable…").await;
    let question = browser.text_of(&format!("{newbie} .confirm")).await;
    assert!(question.contains("Disable newbie?"), "{question}");
    browser.click_button(newbie, "Keep").await;
    assert!(c.find(Locator::Css(&format!("{newbie} .confirm"))).await.is_err(), "Keep leaves the user alone");
    // newbie's `disabled` as the API reports it.
    let newbie_disabled = || async {
        let users = json(app.get("/api/v1/users").await, 200).await;
        users.as_array()?.iter().find(|u| u["username"] == "newbie")?["disabled"].as_bool()
    };
    assert_eq!(newbie_disabled().await, Some(false));
    browser.click_button(newbie, "Disable…").await;
    browser.click_button(newbie, "Disable").await;
    browser.eventually("newbie is disabled", || async { (newbie_disabled().await?).then_some(()) }).await;
    browser.click_button(newbie, "Enable").await;
    browser.eventually("newbie is enabled again", || async { (!newbie_disabled().await?).then_some(()) }).await;
    let row = browser.wait_for(r#"tr[data-user="newbie"]"#).await;
    row.find(Locator::Css(r#"input[name="roles[operator]"]"#)).await.unwrap().click().await.unwrap();
    row.find(Locator::Css(".roles-form button")).await.unwrap().click().await.unwrap();
    browser
        .eventually("newbie holds viewer and operator", || async {
            let users = json(app.get("/api/v1/users").await, 200).await;
            let newbie = users.as_array()?.iter().find(|u| u["username"] == "newbie")?.clone();
            (newbie["roles"] == serde_json::json!(["viewer", "operator"])).then_some(())
        })
        .await;
    browser.screenshot("users").await;

    c.goto(&app.url("/tokens")).await.unwrap();
    browser.wait_hydrated().await;
    let form = browser.wait_for("#create-token").await;
    form.find(Locator::Css(r#"input[name="name"]"#)).await.unwrap().send_keys("e2e-bot").await.unwrap();
    form.find(Locator::Css(r#"input[name="roles[admin]"]"#)).await.unwrap().click().await.unwrap();
    form.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    let secret = browser.text_of("#new-token .secret").await;
    assert!(secret.starts_with("mg_"), "{secret}");
    // One click copies it.
    browser
        .cdp(
            "Browser.grantPermissions",
            serde_json::json!({ "origin": app.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
        )
        .await;
    browser.wait_for("#new-token button.copy").await.click().await.unwrap();
    assert_eq!(browser.text_of("#new-token button.copy").await, "Copied");
    let copied = c.execute("return navigator.clipboard.readText();", vec![]).await.unwrap();
    assert_eq!(copied.as_str(), Some(secret.as_str()), "the clipboard holds the token");
    let name = c.find(Locator::Css(r#"#create-token input[name="name"]"#)).await.unwrap().prop("value").await.unwrap();
    assert_eq!(name.as_deref(), Some(""), "the token form is empty again");
    let me = modelgate_tests::bearer_client(&secret).get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(json(me, 200).await["username"], "admin", "the token shown once works");
    browser.screenshot("tokens").await;
    browser.wait_for("#tokens tbody tr button.danger").await.click().await.unwrap();
    browser
        .eventually("the token shows as revoked", || async {
            let text = c.find(Locator::Css("#tokens tbody tr")).await.ok()?.text().await.ok()?;
            text.contains("revoked").then_some(())
        })
        .await;
    let me = modelgate_tests::bearer_client(&secret).get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "a revoked token is refused");

    // Unknown pages get a clear 404 page.
    c.goto(&app.url("/models/ghost")).await.unwrap();
    let panel = c.find(Locator::Css(".error-panel")).await.unwrap().text().await.unwrap();
    assert!(panel.contains("model 'ghost' not found"), "{panel}");
    browser.screenshot("not-found").await;

    // The API reference page renders the operations from the OpenAPI document.
    c.goto(&app.url("/api/v1/docs")).await.unwrap();
    browser.wait_for("details.op").await;
    let ops = c.find_all(Locator::Css("details.op")).await.unwrap();
    assert!(ops.len() >= 12, "{} operations", ops.len());
    let first = &ops[0];
    first.find(Locator::Css("summary")).await.unwrap().click().await.unwrap();
    first.find(Locator::Css("button[type=\"submit\"]")).await.unwrap().click().await.unwrap();
    browser
        .eventually("the reference page shows the response", || async {
            let text = first.find(Locator::Css("pre.response")).await.ok()?.text().await.ok()?;
            (text.starts_with("200") && text.contains("fraud-detector")).then_some(())
        })
        .await;
    browser.screenshot("api-reference").await;

    let errors = browser.page_errors().await;
    assert!(errors.is_empty(), "the console logged errors: {errors:#?}");
    browser.close().await;
}

/// Opens the audit log at `url`, whose entries show `shown`; ticks the filter box `name` and
/// applies it: the URL keeps its filters and gains `name=false`, the box stays ticked, entries
/// remain and none shows `hidden`.
async fn hide_on_the_audit_log(browser: &Browser, url: &str, name: &str, (shown, hidden): (&str, &str)) {
    let c = &browser.client;
    c.goto(url).await.unwrap();
    browser.wait_hydrated().await;
    assert!(browser.text_of("#audit-entries").await.contains(shown));
    browser.wait_for(&format!(r#"#audit-filters input[name="{name}"]"#)).await.click().await.unwrap();
    browser.wait_for(r#"#audit-filters button[type="submit"]"#).await.click().await.unwrap();
    let filters = url.split_once('?').map_or("", |(_, query)| query);
    browser
        .eventually(&format!("{name}: {hidden} left out"), || async {
            let now = c.current_url().await.ok()?;
            let text = c.find(Locator::Css("#audit-entries")).await.ok()?.text().await.ok()?;
            let ticked = c.find(Locator::Css(&format!(r#"#audit-filters input[name="{name}"]:checked"#))).await.is_ok();
            let rows = c.find_all(Locator::Css("#audit-entries tbody tr")).await.ok()?.len();
            let kept = now.as_str().contains(&format!("{name}=false")) && now.as_str().contains(filters);
            (kept && ticked && rows > 0 && !text.contains(hidden)).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_officer_filters_inspects_exports_and_verifies_the_audit_log() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    c.goto(&app.url("/sign-in")).await.unwrap();
    browser.wait_hydrated().await;
    sign_in(&browser, "compliance", DEMO_PASSWORD).await;
    browser.wait_for("#models").await;

    // The model page carries its own audit trail, linked to the full log.
    c.goto(&app.url("/models/fraud-detector")).await.unwrap();
    let trail = browser.text_of("#audit-trail").await;
    assert!(trail.contains("deployment.deploy"), "{trail}");
    browser.screenshot("model-audit-trail").await;

    // The audit log, filtered to deploys of one model. Its code is a lazily loaded WASM chunk:
    // fetched on the way there, not with the model page.
    let audit_chunk = |files: &[String]| files.iter().any(|f| f.contains("split___audit_route_view"));
    let fetched = browser.wasm_fetched().await;
    assert!(fetched.iter().any(|f| f.ends_with("/modelgate.wasm")) && !audit_chunk(&fetched), "{fetched:?}");
    browser.wait_for(".topnav").await.find(Locator::LinkText("Audit")).await.unwrap().click().await.unwrap();
    browser.wait_for("#audit-entries").await;
    let fetched = browser.wasm_fetched().await;
    assert!(audit_chunk(&fetched), "the audit page's chunk was not fetched: {fetched:?}");
    browser.wait_hydrated().await;
    let form = browser.wait_for("#audit-filters").await;
    form.find(Locator::Css(r#"input[name="model"]"#)).await.unwrap().send_keys("fraud-detector").await.unwrap();
    form.find(Locator::Css(r#"select[name="action"]"#))
        .await
        .unwrap()
        .select_by_value("deployment.deploy")
        .await
        .unwrap();
    form.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    let rows = browser
        .eventually("only fraud-detector deploys are listed", || async {
            let url = c.current_url().await.ok()?;
            let rows = c.find_all(Locator::Css("#audit-entries tbody tr")).await.ok()?;
            let mut texts = Vec::new();
            for r in &rows {
                texts.push(r.text().await.ok()?);
            }
            let all_match = texts.iter().all(|t| t.contains("deployment.deploy") && t.contains("fraud-detector"));
            (url.as_str().contains("action=deployment.deploy") && !texts.is_empty() && all_match).then_some(texts)
        })
        .await;
    browser.screenshot("audit-log").await;

    // One entry: its facts and the before/after diff.
    c.find(Locator::Css("#audit-entries tbody tr a.seq")).await.unwrap().click().await.unwrap();
    let diff = browser.text_of("#diff").await;
    assert!(diff.contains("version"), "{diff}");
    assert!(
        !c.find_all(Locator::Css("#diff tr.diff-changed")).await.unwrap().is_empty(),
        "the changed field stands out"
    );
    let facts = c.find(Locator::Css("#entry-facts")).await.unwrap().text().await.unwrap();
    assert!(facts.contains("deployment.deploy"), "{facts}");
    browser.screenshot("audit-entry").await;
    // The newest entry has no "next" link (there is none yet); an entry about a user names it
    // without linking compliance to the users page, which is for admins.
    let head = json(app.get("/api/v1/audit/status").await, 200).await["head_seq"].as_i64().unwrap();
    c.goto(&app.url(&format!("/audit/{head}"))).await.unwrap();
    browser.wait_for("#entry-facts").await;
    let pager = browser.text_of(".page-head .pager").await;
    assert!(pager.contains(&format!("#{}", head - 1)) && !pager.contains(&format!("#{}", head + 1)), "{pager}");
    let about_users = json(app.get("/api/v1/audit?q=users%2F&limit=1").await, 200).await;
    let seq = about_users["entries"][0]["seq"].as_i64().expect("the demo's users are in the log");
    c.goto(&app.url(&format!("/audit/{seq}"))).await.unwrap();
    let facts = browser.wait_for("#entry-facts").await;
    assert!(facts.find(Locator::Css(r#"a[href="/admin/users"]"#)).await.is_err(), "no link compliance cannot follow");
    c.goto(&app.url("/audit?q=users%2F")).await.unwrap();
    let listed = browser.wait_for("#audit-entries").await;
    assert!(listed.text().await.unwrap().contains("users/"), "entries about users are listed");
    assert!(listed.find(Locator::Css(r#"a[href="/admin/users"]"#)).await.is_err(), "…without the admins' link");
    // The officer's own sign-in heads the log; ticking "Hide sign-ins" leaves sessions out.
    hide_on_the_audit_log(&browser, &app.url("/audit"), "sessions", ("session.sign_in", "session.")).await;
    // The guardrails' verdict changes on fraud-detector, and then without them.
    let trail = app.url("/audit?model=fraud-detector");
    hide_on_the_audit_log(&browser, &trail, "verdicts", ("guardrail.verdict", "guardrail.verdict")).await;
    c.goto(&app.url("/audit?model=fraud-detector&action=deployment.deploy")).await.unwrap();
    browser.wait_for("#audit-entries").await;

    // Export what the filters select, through the browser session, and verify it offline.
    let href = browser.wait_for("#export-jsonl").await.attr("href").await.unwrap().unwrap();
    assert!(href.contains("model=fraud-detector") && href.contains("action=deployment.deploy"), "{href}");
    let text = browser.fetch_text(&href).await;
    let file = std::env::temp_dir().join(format!("modelgate-e2e-export-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&file, &text).unwrap();
    let keys = json(app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap(), 200).await;
    let key = server::audit::signing::parse_public_key(keys["current"]["public_key"].as_str().unwrap()).unwrap();
    let report = server::audit::offline::verify_file(&file, &[key]).unwrap();
    assert!(report.intact(), "{report}");
    assert_eq!(report.entries as usize, rows.len(), "the export holds what the screen lists: {report}");
    let _ = std::fs::remove_file(file);

    // An export of the officer's still being written (its row as a job reports it): the page
    // shows how far it got, still after a reload, and follows it to its end.
    let pool = app.store.db.pool();
    let now = app.clock.now_ms();
    sqlx::query(
        "INSERT INTO jobs (kind, scope, state, done, total, requested_by, started_at, updated_at) \
         VALUES ('audit.export', 'compliance', 'running', 40, 80, 'compliance', $1, $1)",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    for (visit, reload) in [("first visit", false), ("after a reload", true)] {
        browser.open_or_reload(&app.url("/audit?model=fraud-detector&action=deployment.deploy"), reload).await;
        let shown = browser.text_of("#export-job").await;
        assert!(shown.contains("Exporting: entry 40 of 80 (50 %)"), "{visit}: {shown}");
        assert!(browser.wait_for("#export-job progress").await.attr("value").await.unwrap().is_some());
    }
    sqlx::query(
        "UPDATE jobs SET state = 'failed', error = 'storage refused it', finished_at = $1 WHERE kind = 'audit.export'",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    browser
        .eventually("the page follows the export to its end", || async {
            let text = c.find(Locator::Css("#export-job")).await.ok()?.text().await.ok()?;
            text.contains("did not finish: storage refused it").then_some(())
        })
        .await;

    // Clicked, the export is written on the server as a job; once done the page offers the file,
    // still after a reload, and it holds what the link streamed.
    browser.wait_for("#export-jsonl").await.click().await.unwrap();
    let ready = browser
        .eventually("the export is ready to download", || async {
            let link = c.find(Locator::Css("#export-job a")).await.ok()?;
            link.attr("href").await.ok()?
        })
        .await;
    let shown = browser.text_of("#export-job").await;
    assert!(shown.contains(&format!("{} entries", rows.len())), "{shown}");
    browser.reload().await;
    let after_reload = browser.wait_for("#export-job a").await.attr("href").await.unwrap();
    assert_eq!(after_reload.as_deref(), Some(ready.as_str()));
    let file = std::env::temp_dir().join(format!("modelgate-e2e-export-job-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&file, browser.fetch_text(&ready).await).unwrap();
    let report = server::audit::offline::verify_file(&file, &[key]).unwrap();
    assert!(report.intact() && report.entries as usize == rows.len(), "{report}");
    let _ = std::fs::remove_file(file);
    browser.screenshot("audit-export-ready").await;

    // A verification running in the background (held at its first progress report): the panel
    // shows its progress, still after a reload, and the verdict once it ends.
    let (_, release) = app.held_verification("auditor").await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    for (visit, reload) in [("first visit", false), ("after a reload", true)] {
        browser.open_or_reload(&app.url("/audit"), reload).await;
        let shown = browser.text_of("#verify-progress").await;
        assert!(shown.contains("Verifying: 1 of 4 entries (25 %)"), "{visit}: {shown}");
        let bar = browser.wait_for("#verify-progress progress").await;
        assert_eq!(bar.attr("value").await.unwrap().as_deref(), Some("1"), "{visit}");
        let button = browser.wait_for("#verify-now button").await;
        assert!(button.attr("disabled").await.unwrap().is_some(), "{visit}: one verification at a time");
    }
    browser.screenshot("audit-verifying").await;
    release.send(()).unwrap();
    browser
        .eventually("the panel follows the job to its end", || async {
            let text = c.find(Locator::Css("#integrity")).await.ok()?.text().await.ok()?;
            let gone = c.find(Locator::Css("#verify-progress")).await.is_err();
            (gone && text.contains("intact")).then_some(())
        })
        .await;

    // Verify now: a second job runs to its end; the panel reports the chain intact and a fresh
    // signed checkpoint.
    let finished = || async {
        let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'audit.verify' AND state = 'done'")
            .fetch_one(app.store.db.pool())
            .await
            .unwrap();
        jobs
    };
    assert_eq!(finished().await, 1);
    browser.wait_for("#verify-now button:not([disabled])").await.click().await.unwrap();
    browser.eventually("the second verification ends", || async { (finished().await == 2).then_some(()) }).await;
    browser
        .eventually("the panel shows the verification", || async {
            let text = c.find(Locator::Css("#integrity")).await.ok()?.text().await.ok()?;
            (text.contains("intact") && text.contains("signature valid") && !text.contains("Verifying:")).then_some(())
        })
        .await;
    browser.screenshot("audit-integrity").await;

    let errors = browser.page_errors().await;
    assert!(errors.is_empty(), "the console logged errors: {errors:#?}");
    browser.close().await;
}

/// Scrolls an element to the top of the viewport (before a screenshot).
async fn scroll_to(browser: &Browser, css: &str) {
    let element = browser.wait_for(css).await;
    let arg = serde_json::to_value(&element).unwrap();
    browser.client.execute("arguments[0].scrollIntoView({block: 'start'}); return null;", vec![arg]).await.unwrap();
}

/// The number of series a chart draws.
async fn series_of(browser: &Browser, key: &str) -> String {
    let css = format!(r#"figure.chart[data-key="{key}"]"#);
    browser.wait_for(&css).await.attr("data-series").await.unwrap().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reads_charts_compares_versions_and_sees_new_points_live() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    c.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    sign_in(&browser, "operator", DEMO_PASSWORD).await;

    // The model page: the failing live version raises a banner; every version has a sparkline.
    let banner = browser.wait_for(r#".failing-banner[data-environment="production"]"#).await;
    assert!(banner.text().await.unwrap().contains("v6 is failing"), "{}", banner.text().await.unwrap());
    let sparklines = c.find_all(Locator::Css("#versions svg.sparkline")).await.unwrap();
    assert_eq!(sparklines.len(), 8, "one sparkline per version");
    browser.wait_for("#across-versions figure.chart path.series").await;
    browser.screenshot("model-failing-banner").await;
    scroll_to(&browser, "#across-versions").await;
    browser.screenshot("model-metrics-across-versions").await;

    // An operator adds a guardrail through the form; it is listed with the rule in words.
    browser.wait_hydrated().await;
    let form = browser.wait_for("#guardrails > form.guardrail-form").await;
    for (name, value) in
        [("environment", "staging"), ("source", "eval"), ("aggregation", "last"), ("severity", "warning")]
    {
        form.find(Locator::Css(&format!(r#"select[name="{name}"]"#)))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }
    for (name, value) in [("metric", "loss"), ("window_size", "1"), ("threshold", "0.3")] {
        let input = form.find(Locator::Css(&format!(r#"input[name="{name}"]"#))).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    form.find(Locator::Css(r#"select[name="comparator"]"#)).await.unwrap().select_by_value("<=").await.unwrap();
    form.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser
        .eventually("the new guardrail is listed", || async {
            let table = c.find(Locator::Css("#guardrails table")).await.ok()?.text().await.ok()?;
            table.contains("last(loss (eval), last 1) <= 0.3").then_some(())
        })
        .await;
    let rules = json(app.get("/api/v1/models/fraud-detector/guardrails").await, 200).await;
    let added =
        rules.as_array().unwrap().iter().find(|g| g["metric"] == "loss").expect("saved through the API's rules");
    assert_eq!((added["environment"].as_str(), added["severity"].as_str()), (Some("staging"), Some("warning")));
    // …and edits it in place: the threshold changes, through the same audited path.
    let row = format!(r#"#guardrails tr[data-guardrail="{}"]"#, added["id"]);
    browser.wait_for(&format!("{row} details summary")).await.click().await.unwrap();
    let threshold = browser.wait_for(&format!(r#"{row} details input[name="threshold"]"#)).await;
    threshold.clear().await.unwrap();
    threshold.send_keys("0.25").await.unwrap();
    scroll_to(&browser, "#guardrails").await;
    browser.screenshot("model-guardrail-edit").await;
    c.find(Locator::Css(&format!(r#"{row} details button[type="submit"]"#))).await.unwrap().click().await.unwrap();
    browser
        .eventually("the edited guardrail is listed", || async {
            let table = c.find(Locator::Css("#guardrails table")).await.ok()?.text().await.ok()?;
            table.contains("last(loss (eval), last 1) <= 0.25").then_some(())
        })
        .await;
    let rules = json(app.get("/api/v1/models/fraud-detector/guardrails").await, 200).await;
    let edited = rules.as_array().unwrap().iter().find(|g| g["metric"] == "loss").unwrap();
    assert_eq!((edited["id"].clone(), edited["threshold"].as_f64()), (added["id"].clone(), Some(0.25)));
    let open = c.find_all(Locator::Css("#guardrails details[open]")).await.unwrap();
    assert!(open.is_empty(), "the editor closes after saving");
    scroll_to(&browser, "#guardrails").await;
    browser.screenshot("model-guardrails").await;

    // The version page: one chart per key, one line per series of the key.
    c.goto(&app.url("/models/fraud-detector/versions/6?axis=time")).await.unwrap();
    browser.wait_hydrated().await;
    let charts = c.find_all(Locator::Css("#metrics figure.chart")).await.unwrap();
    assert_eq!(charts.len(), 4, "accuracy, error_rate, latency_ms, loss");
    assert_eq!(series_of(&browser, "latency_ms").await, "2", "live in staging and in production");
    let paths = c.find_all(Locator::Css(r#"figure[data-key="latency_ms"] path.series"#)).await.unwrap();
    assert_eq!(paths.len(), 2);
    let thresholds = c.find_all(Locator::Css(r#"figure[data-key="latency_ms"] .threshold"#)).await.unwrap();
    assert_eq!(thresholds.len(), 2, "the production and staging latency guardrails");
    let report = browser.text_of(r#".health-report[data-environment="production"]"#).await;
    assert!(report.contains("failing") && report.contains("p99(latency_ms, last 100) <= 250"), "{report}");
    assert!(browser.page_errors().await.is_empty(), "page errors: {:#?}", browser.page_errors().await);
    scroll_to(&browser, "#metrics").await;
    browser.screenshot("version-health-and-charts").await;

    // Compare with v4: the accuracy chart gains v4's series.
    c.goto(&app.url("/models/fraud-detector/versions/6?compare=4&axis=step")).await.unwrap();
    browser.wait_hydrated().await;
    assert_eq!(series_of(&browser, "accuracy").await, "2", "v6 and v4");
    let legend = browser.text_of(r#"figure[data-key="accuracy"] .legend"#).await;
    assert!(legend.contains("v6 eval") && legend.contains("v4 eval"), "{legend}");

    // The tooltip shows the exact value of the point under the keyboard cursor.
    let svg = browser.wait_for(r#"figure[data-key="accuracy"] svg"#).await;
    c.execute("arguments[0].focus(); return null;", vec![serde_json::to_value(&svg).unwrap()]).await.unwrap();
    let right = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E014}' })
        .then(KeyAction::Up { value: '\u{E014}' });
    c.perform_actions(right).await.unwrap();
    let tip = browser.text_of(r#"figure[data-key="accuracy"] .chart-tip .tip-value"#).await;
    let series = json(app.get("/api/v1/models/fraud-detector/versions/6/metrics/accuracy").await, 200).await;
    let first = series["series"][0]["points"][0]["value"].as_f64().unwrap();
    let shown = tip.parse::<f64>().unwrap();
    assert!(tip.len() <= 12, "the tooltip rounds to six significant digits: {tip}");
    assert!((shown - first).abs() <= first.abs() * 1e-5, "the tooltip shows the stored value: {tip} vs {first}");
    scroll_to(&browser, r#"figure[data-key="accuracy"]"#).await;
    browser.screenshot("version-compare-tooltip").await;

    // New points reach the open chart without a reload (server-sent events).
    c.execute("window.__stillHere = true; return null;", vec![]).await.unwrap();
    let late = serde_json::json!({ "points": [{ "key": "accuracy", "value": 0.97, "step": 400 }] });
    json(app.post("/api/v1/models/fraud-detector/versions/6/metrics", &late).await, 201).await;
    browser
        .eventually("the accuracy chart shows the new point", || async {
            let legend =
                c.find(Locator::Css(r#"figure[data-key="accuracy"] .legend"#)).await.ok()?.text().await.ok()?;
            legend.contains("v6 eval — 121 points").then_some(())
        })
        .await;
    let kept = c.execute("return window.__stillHere === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "updated without a reload");

    // A deploy of this version inside the charted day is marked on the time axis.
    app.clock.advance(-2 * 3_600_000);
    let deploy = serde_json::json!({ "version": 6, "reason": "e2e: marker" });
    json(app.post("/api/v1/models/fraud-detector/environments/staging/deploy", &deploy).await, 201).await;
    c.goto(&app.url("/models/fraud-detector/versions/6?axis=time")).await.unwrap();
    let marker = browser.text_of(r#"figure[data-key="latency_ms"] .marker text"#).await;
    assert_eq!(marker, "deployed · staging");
    scroll_to(&browser, r#"figure[data-key="latency_ms"]"#).await;
    browser.screenshot("version-deploy-marker").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_requests_a_rollback_a_reviewer_approves_it_and_break_glass_is_acknowledged() {
    let (app, operator) = demo_console().await;
    let reviewer = Browser::start().await;
    let (o, r) = (&operator.client, &reviewer.client);
    o.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    sign_in(&operator, "operator", DEMO_PASSWORD).await;
    r.goto(&app.url("/sign-in?next=%2Freviews")).await.unwrap();
    sign_in(&reviewer, "reviewer", DEMO_PASSWORD).await;
    reviewer.wait_for("#review-queue").await;
    reviewer.wait_hydrated().await;
    assert!(reviewer.text_of("#review-queue").await.contains("Nothing awaits review"));

    // The operator rolls back from the failing banner: the dialog proposes v4, the version live
    // in production before v6, and shows the checks and both versions' metrics.
    let banner = r#".failing-banner[data-environment="production"]"#;
    operator.wait_for(banner).await;
    operator.wait_hydrated().await;
    o.execute("window.__stillHere = true; return null;", vec![]).await.unwrap();
    let banner_text = operator.text_of(banner).await;
    assert!(banner_text.contains("Proposed rollback target: v4"), "{banner_text}");
    assert!(
        banner_text.contains("p99(latency_ms, last 100) <= 250 — observed "),
        "names the broken rule: {banner_text}"
    );
    let rule_link = operator.wait_for(&format!("{banner} .broken-rules a")).await;
    assert_eq!(
        rule_link.attr("href").await.unwrap().as_deref(),
        Some("/models/fraud-detector/versions/6#chart-latency_ms"),
        "the rule links to its chart"
    );
    operator.wait_for(&format!("{banner} button.banner-action")).await.click().await.unwrap();
    operator.wait_for(".modal .checks").await;
    let target = operator.wait_for(r#".modal select[name="to_version"]"#).await;
    assert_eq!(target.prop("value").await.unwrap().as_deref(), Some("4"));
    let checks = texts_of(&operator, ".modal .checks li").await;
    assert_eq!(checks.len(), 4, "{checks:?}");
    assert!(checks.iter().any(|c| c.contains("v4 can go live")), "{checks:?}");
    let comparison = operator.text_of(".modal table.comparison").await.to_lowercase();
    assert!(
        comparison.contains("v6 (live)") && comparison.contains("v4 (target)") && comparison.contains("guarded"),
        "{comparison}"
    );
    assert!(operator.text_of(".modal .policy-note").await.contains("Needs 1 approval"));
    operator.screenshot("rollback-dialog").await;
    let reason = operator.wait_for(r#".modal textarea[name="reason"]"#).await;
    reason.send_keys("e2e: v6 breaks the latency guardrail").await.unwrap();
    operator.wait_for(".modal #rollback-request button.primary").await.click().await.unwrap();
    let toast = operator.text_of(".toast.ok").await;
    assert!(toast.contains("Rollback request #1 filed"), "{toast}");
    let pending = operator.text_of(r#"article[data-env="production"] .pending-rollback"#).await;
    assert!(pending.contains("Rollback #1 to v4 awaits approval: 0 of 1"), "{pending}");
    operator.screenshot("rollback-requested").await;

    // The reviewer's queue shows it without a reload, with a count in the header; approving it
    // rolls production back.
    reviewer.wait_for(r#".review-card[data-rollback="1"]"#).await;
    assert_eq!(reviewer.text_of(".count-badge").await, "1");
    let card = reviewer.text_of(r#".review-card[data-rollback="1"]"#).await;
    assert!(card.contains("v6 → v4") && card.contains("e2e: v6 breaks the latency guardrail"), "{card}");
    // The evidence is on the card: v6's health, the rule it breaks with the value seen, and the
    // dialog's comparison of the two versions.
    let evidence = reviewer.text_of(r#".review-card[data-rollback="1"] .evidence"#).await;
    assert!(evidence.contains("v6 is failing in production"), "{evidence}");
    assert!(evidence.contains("p99(latency_ms, last 100) <= 250 — observed "), "{evidence}");
    let comparison = reviewer.text_of(r#".review-card[data-rollback="1"] table.comparison"#).await.to_lowercase();
    assert!(comparison.contains("v6 (live)") && comparison.contains("v4 (target)"), "{comparison}");
    assert!(comparison.contains("latency_ms"), "{comparison}");
    reviewer.screenshot("review-queue").await;
    let comment = reviewer.wait_for(r#".review-card[data-rollback="1"] input[name="comment"]"#).await;
    comment.send_keys("latency chart agrees").await.unwrap();
    reviewer.wait_for(r#".review-card[data-rollback="1"] button[value="approve"]"#).await.click().await.unwrap();
    let note = reviewer.text_of(".sr-status .form-note").await;
    assert_eq!(note, "Approved: fraud-detector in production rolled back to v4.");
    let live = json(app.get("/api/v1/models/fraud-detector/environments/production").await, 200).await;
    assert_eq!(live["version"], 4);

    // The operator's open page follows: new live version and history, no reload.
    operator
        .eventually("production shows v4 live without a reload", || async {
            let text = o
                .find(Locator::Css(r#"article[data-env="production"] .live-version"#))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (text.trim() == "v4").then_some(())
        })
        .await;
    assert!(o.find(Locator::Css(r#"article[data-env="production"] .pending-rollback"#)).await.is_err());
    operator
        .eventually("the note that the request awaits approval goes", || async {
            o.find(Locator::Css(".toast.ok")).await.is_err().then_some(())
        })
        .await;
    let history = operator.text_of("#history li").await;
    assert!(history.contains("rollback") && history.contains("v6 → v4") && history.contains("request #1"), "{history}");
    let kept = o.execute("return window.__stillHere === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "updated in place");
    operator.screenshot("model-after-rollback").await;

    // Break glass in staging: at once, marked, and in the reviewer's queue until acknowledged.
    let staging = r#"article[data-env="staging"]"#;
    let before = operator.text_of(&format!("{staging} .live-version")).await;
    operator.wait_for(&format!("{staging} button.roll-back")).await.click().await.unwrap();
    operator.wait_for(".modal .checks").await;
    let proposed = operator.wait_for(r#".modal select[name="to_version"]"#).await.prop("value").await.unwrap().unwrap();
    operator.wait_for(".modal details.break-glass summary").await.click().await.unwrap();
    operator
        .wait_for(r#".modal textarea[name="justification"]"#)
        .await
        .send_keys("e2e: staging is serving garbage to the shadow traffic")
        .await
        .unwrap();
    operator.wait_for(r#".modal input[name="confirm"]"#).await.send_keys("fraud-detector").await.unwrap();
    operator.screenshot("break-glass").await;
    operator.wait_for(".modal details.break-glass button.danger").await.click().await.unwrap();
    operator
        .eventually("staging changed by break glass", || async {
            let text = o.find(Locator::Css(&format!("{staging} .live-version"))).await.ok()?.text().await.ok()?;
            (text.trim() == format!("v{proposed}") && text != before).then_some(())
        })
        .await;
    let marked = operator.text_of(&format!("{staging} .pending-rollback.danger")).await;
    assert!(marked.contains("awaiting a reviewer's acknowledgement"), "{marked}");
    assert!(operator.text_of("#history li").await.contains("break_glass"));

    let glass = reviewer.wait_for(".review-card.break-glass").await;
    let id = glass.attr("data-rollback").await.unwrap().unwrap();
    reviewer.screenshot("break-glass-review").await;
    reviewer
        .wait_for(&format!(r#".review-card[data-rollback="{id}"] input[name="comment"]"#))
        .await
        .send_keys("checked: staging only")
        .await
        .unwrap();
    reviewer.wait_for(&format!(r#".review-card[data-rollback="{id}"] button.primary"#)).await.click().await.unwrap();
    reviewer
        .eventually("the acknowledged break glass leaves the queue", || async {
            let queue = r.find(Locator::Css("#review-queue")).await.ok()?.text().await.ok()?;
            queue.contains("Nothing awaits review").then_some(())
        })
        .await;
    let acked = json(app.get(&format!("/api/v1/rollbacks/{id}")).await, 200).await;
    assert_eq!(acked["acknowledgement"]["by"], "reviewer");
    assert!(operator.page_errors().await.is_empty(), "{:#?}", operator.page_errors().await);
    assert!(reviewer.page_errors().await.is_empty(), "{:#?}", reviewer.page_errors().await);
    reviewer.close().await;
    operator.close().await;
}

/// The texts of every element matching `css`.
async fn texts_of(browser: &Browser, css: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for e in browser.client.find_all(Locator::Css(css)).await.unwrap() {
        texts.push(e.text().await.unwrap());
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_a_policy_freezes_an_environment_and_registers_a_webhook() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    c.goto(&app.url("/sign-in?next=%2Fadmin%2Fenvironments")).await.unwrap();
    sign_in(&browser, "admin", DEMO_PASSWORD).await;
    let production = r#"section.policy[data-env="production"]"#;
    browser.wait_for(production).await;
    browser.wait_hydrated().await;

    // Two approvals, reviewers may break glass too, automatic requests.
    let approvals = browser.wait_for(&format!(r#"{production} input[name="approvals_required"]"#)).await;
    approvals.clear().await.unwrap();
    approvals.send_keys("2").await.unwrap();
    browser
        .wait_for(&format!(r#"{production} input[name="break_glass_roles[reviewer]"]"#))
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for(&format!(r#"{production} input[name="auto_request"]"#)).await.click().await.unwrap();
    browser.wait_for(&format!("{production} form.policy-form button.primary")).await.click().await.unwrap();
    browser
        .eventually("the summary shows the saved policy", || async {
            let text = c.find(Locator::Css(&format!("{production} .policy-summary"))).await.ok()?.text().await.ok()?;
            text.contains(
                "2 approvals · 60 min to approve · break glass: operator, reviewer · files requests when failing",
            )
            .then_some(())
        })
        .await;
    // The note sits in the panel that was saved, under its form, and nowhere else.
    let note = browser.text_of(&format!("{production} form.policy-form + .form-note.ok")).await;
    assert_eq!(note, "Policy saved.");
    assert_eq!(c.find_all(Locator::Css(".form-note")).await.unwrap().len(), 1, "one note on the page");
    let policy = json(app.get("/api/v1/environments/production/policy").await, 200).await;
    assert_eq!(policy["approvals_required"], 2);
    assert_eq!(policy["auto_request"], true);

    // A freeze window (times typed as UTC), then shown in the list.
    let form = browser.wait_for(&format!("{production} form.freeze-form")).await;
    for (name, value) in [("starts_at", "2031-12-24T00:00"), ("ends_at", "2031-12-27T00:00")] {
        let input = form.find(Locator::Css(&format!(r#"input[name="{name}"]"#))).await.unwrap();
        let arg = serde_json::to_value(&input).unwrap();
        c.execute(&format!("arguments[0].value = '{value}'; return null;"), vec![arg]).await.unwrap();
    }
    form.find(Locator::Css(r#"input[name="reason"]"#)).await.unwrap().send_keys("holiday freeze").await.unwrap();
    form.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    browser
        .eventually("the freeze window is listed", || async {
            let text = c.find(Locator::Css(&format!("{production} .freeze-list"))).await.ok()?.text().await.ok()?;
            text.contains("2031-12-24 00:00 UTC → 2031-12-27 00:00 UTC").then_some(())
        })
        .await;
    let note = browser.text_of(&format!("{production} form.freeze-form + .form-note.ok")).await;
    assert_eq!(note, "Freeze window added.", "the freeze window's note replaces the policy's");
    assert_eq!(c.find_all(Locator::Css(".form-note")).await.unwrap().len(), 1, "one note on the page");
    let policy = json(app.get("/api/v1/environments/production/policy").await, 200).await;
    assert_eq!(policy["freeze_windows"][0]["starts_at"], "2031-12-24T00:00:00Z");

    // A webhook for fraud-detector: its secret is shown once; a deploy is delivered and logged.
    let mut receiver = modelgate_tests::WebhookReceiver::start(0).await;
    let form = browser.wait_for("form.webhook-form").await;
    form.find(Locator::Css(r#"input[name="url"]"#)).await.unwrap().send_keys(&receiver.url).await.unwrap();
    form.find(Locator::Css(r#"input[name="model"]"#)).await.unwrap().send_keys("fraud-detector").await.unwrap();
    form.find(Locator::Css(r#"input[name="description"]"#)).await.unwrap().send_keys("deployer").await.unwrap();
    form.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    let secret = browser.text_of("#webhooks code.secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    json(
        app.post("/api/v1/models/fraud-detector/environments/staging/deploy", &serde_json::json!({ "version": 6 }))
            .await,
        201,
    )
    .await;
    let delivery = receiver.next().await;
    assert!(delivery.body.contains("\"to_version\":6"), "{}", delivery.body);
    browser.wait_for("#webhooks tr[data-webhook] button.link").await.click().await.unwrap();
    browser
        .eventually("the delivery log shows the delivered event", || async {
            let text = c.find(Locator::Css("#deliveries")).await.ok()?.text().await.ok()?;
            (text.contains("delivered") && text.contains("fraud-detector · staging: v8 → v6")).then_some(())
        })
        .await;
    scroll_to(&browser, "#webhooks").await;
    browser.screenshot("environments-webhooks").await;
    c.execute("window.scrollTo(0, 0); return null;", vec![]).await.unwrap();
    browser.screenshot("environments-policies").await;
    assert!(browser.page_errors().await.is_empty(), "{:#?}", browser.page_errors().await);
    browser.close().await;
}

/// A model named as MLflow users name them, its version registered with its files: the models
/// list links to it, the version page lists the files with the server's digest and downloads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_page_lists_the_files_the_registry_holds() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    json(app.post("/api/v1/models", &serde_json::json!({ "name": "Iris clf v2" })).await, 201).await;
    let weights: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .part("version", reqwest::multipart::Part::text(r#"{"framework": "sklearn"}"#))
        .part("file", reqwest::multipart::Part::bytes(weights.clone()).file_name("model.pkl"))
        .part("file", reqwest::multipart::Part::bytes(b"flavors: {}\n".to_vec()).file_name("MLmodel"))
        .part("file", reqwest::multipart::Part::bytes(b"numpy==2.1\n".to_vec()).file_name("env/requirements.txt"));
    let response = app.client.post(app.url("/api/v1/models/Iris%20clf%20v2/versions")).multipart(form).send().await;
    let version = json(response.unwrap(), 201).await;

    c.goto(&app.url("/")).await.unwrap();
    sign_in(&browser, "operator", DEMO_PASSWORD).await;
    browser.wait_for(r#"tr[data-model="Iris clf v2"] a"#).await.click().await.unwrap();
    browser.wait_for(r#"#versions tr[data-version="1"] a"#).await.click().await.unwrap();
    browser.wait_for("#files").await;
    browser.wait_hydrated().await;
    assert!(c.current_url().await.unwrap().as_str().ends_with("/models/Iris%20clf%20v2/versions/1"));
    assert_eq!(browser.text_of("h1").await, "Iris clf v2 v1");
    let source = browser.text_of(".digest-source").await;
    assert_eq!(source, "computed by the server over 3 file(s)");
    let digest = version["artifact_digest"].as_str().unwrap();
    assert!(browser.text_of(".facts").await.contains(digest), "the server's digest is shown");
    let rows = texts_of(&browser, "#files tbody tr").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[2].contains("model.pkl") && rows[2].contains("40.0 KB"), "{rows:?}");
    // The download link serves the file's bytes to the signed-in browser.
    let fetched = c
        .execute_async(
            "const done = arguments[0];
             const link = document.querySelector('#files a[href$=\"model.pkl\"]');
             fetch(link.href).then(r => r.arrayBuffer().then(b => done([r.status, b.byteLength])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fetched, serde_json::json!([200, weights.len()]));
    assert!(browser.page_errors().await.is_empty(), "{:#?}", browser.page_errors().await);
    browser.screenshot("version-files").await;
    browser.close().await;
}

/// Serving agents of fraud-detector in production, simulated over the REST protocol: each
/// long-polls its assignment and reports the new version `stagger × its number` after one arrives,
/// so the fleet moves instance by instance.
fn simulate_agents(app: &TestApp, token: String, count: usize, stagger: std::time::Duration) {
    let base = format!("{}/api/v1/models/fraud-detector/environments/production", app.base);
    for i in 0..count {
        let (client, base) = (modelgate_tests::bearer_client(&token), base.clone());
        tokio::spawn(async move {
            let group = if i % 2 == 0 { "eu-west" } else { "us-east" };
            let mut held = 0;
            loop {
                let Ok(response) = client.get(format!("{base}/assignment?after={held}&wait=30")).send().await else {
                    return;
                };
                if response.status() != 200 {
                    continue;
                }
                let signed: serde_json::Value = response.json().await.unwrap();
                let assignment: serde_json::Value = serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap();
                if held > 0 {
                    tokio::time::sleep(stagger * (i as u32 + 1)).await;
                }
                held = assignment["counter"].as_i64().unwrap();
                let report = serde_json::json!({
                    "group": group, "counter": held, "version": assignment["version"],
                    "digest": assignment["digest"], "state": "ready",
                });
                if client.put(format!("{base}/agents/node-{i}")).json(&report).send().await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_rollback_moves_the_serving_fleet_instance_by_instance_on_the_card() {
    let (app, operator) = demo_console().await;
    let user = app::domain::NewUser {
        username: "fleet".into(),
        display_name: "fleet".into(),
        password: DEMO_PASSWORD.into(),
        roles: vec![app::domain::Role::Agent],
    };
    app.store.bootstrap_user(server::audit::AuditActor::system("e2e"), user).await.unwrap();
    let token = app::domain::NewToken {
        name: "agents".into(),
        roles: vec![app::domain::Role::Agent],
        environments: vec!["production".into()],
        ..Default::default()
    };
    let token = app.store.bootstrap_token("fleet", token).await.unwrap().token;
    simulate_agents(&app, token, 6, std::time::Duration::from_millis(700));

    let o = &operator.client;
    o.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    sign_in(&operator, "operator", DEMO_PASSWORD).await;
    let card = r#"article[data-env="production"]"#;
    operator.wait_for(card).await;
    operator.wait_hydrated().await;
    operator
        .eventually("six agents serve v6", || async {
            let text = o.find(Locator::Css(&format!("{card} .fleet"))).await.ok()?.text().await.ok()?;
            (text.contains("3 of 3 on v6 in eu-west") && text.contains("3 of 3 on v6 in us-east")).then_some(())
        })
        .await;
    o.execute("window.__stillHere = true; return null;", vec![]).await.unwrap();
    scroll_to(&operator, card).await;
    operator.screenshot("fleet-before-rollback").await;

    // A rollback to v4, filed and approved over the API by the operator and a reviewer.
    let requested = app.client_as("requester", &[app::domain::Role::Operator]).await;
    let request = serde_json::json!({ "to_version": 4, "reason": "e2e: v6 fails its guardrails" });
    let url = app.url("/api/v1/models/fraud-detector/environments/production/rollbacks");
    let request = json(requested.post(url).json(&request).send().await.unwrap(), 201).await;
    let reviewer = app.client_as("approver", &[app::domain::Role::Reviewer]).await;
    let approve = app.url(&format!("/api/v1/rollbacks/{}/approve", request["id"]));
    json(reviewer.post(approve).json(&serde_json::json!({ "comment": "ok" })).send().await.unwrap(), 200).await;

    // The card follows each agent's report: mixed counts on the way, then all six on v4.
    let mut seen: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let text = operator.text_of(&format!("{card} .fleet")).await;
        let groups = operator.text_of(&format!("{card} .fleet-groups")).await;
        let mixed = groups.contains("on v4") && groups.contains("on v6");
        if mixed && !seen.iter().any(|t| t.contains("on v4") && t.contains("on v6")) {
            scroll_to(&operator, card).await;
            operator.screenshot("fleet-during-rollback").await;
        }
        if seen.last() != Some(&groups) {
            seen.push(groups.clone());
        }
        let done = ["3 of 3 on v4 in eu-west", "3 of 3 on v4 in us-east", "converged"].iter().all(|t| text.contains(t));
        if done {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the fleet did not converge on v4: {seen:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mixed = seen.iter().filter(|t| t.contains("on v4") && t.contains("on v6")).count();
    assert!(mixed >= 2, "the card moved instance by instance: {seen:#?}");
    let kept = o.execute("return window.__stillHere === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "updated in place, no reload");
    operator.screenshot("fleet-after-rollback").await;
    let history = operator.text_of("#history li").await;
    assert!(history.contains("fleet converged"), "{history}");
    operator.close().await;
}
