//! A comparison rule in the browser: an admin replays the demo's observed rule on the failing
//! version (the verdict band under the chart), enforces it, and its evidence — shift, interval,
//! baseline, points — reaches the failing banner, the rollback dialog and the reviewer's card.

use fantoccini::Locator;
use modelgate_tests::json;

use super::{DEMO_PASSWORD, demo_console, sign_in};
use crate::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_replays_and_enforces_a_comparison_whose_evidence_reaches_banner_dialog_and_review() {
    let (app, admin) = demo_console().await;
    let c = &admin.client;
    c.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    sign_in(&admin, "admin", DEMO_PASSWORD).await;
    let rules = json(app.get("/api/v1/models/fraud-detector/guardrails").await, 200).await;
    let rule = rules.as_array().unwrap().iter().find(|g| !g["comparison"].is_null()).expect("the demo's comparison");
    let (id, row) = (rule["id"].as_i64().unwrap(), format!(r#"#guardrails tr[data-guardrail="{}"]"#, rule["id"]));
    assert_eq!(rule["enforced"], false, "observed until enforced");

    // Observed, it does not move the banner: only the threshold rule is named there.
    let banner = r#".failing-banner[data-environment="production"]"#;
    admin.wait_for(banner).await;
    admin.wait_hydrated().await;
    assert!(!admin.text_of(banner).await.contains("vs baseline"), "an observed rule never counts");

    // Replay on the live version: the band under the latency chart ends in fail.
    let replay = admin.wait_for(&format!("{row} a.replay-link")).await;
    assert_eq!(replay.text().await.unwrap(), "Replay on v6");
    replay.click().await.unwrap();
    let summary = admin.text_of(".replay-summary").await;
    assert!(summary.contains("would first have failed at") && summary.contains("Baseline: v4"), "{summary}");
    let band = r#"figure[data-key="latency_ms"] rect.band"#;
    admin.wait_for(band).await;
    let script = "return [...document.querySelectorAll(arguments[0])].map(e => e.dataset.outcome);";
    let outcomes: Vec<String> = serde_json::from_value(c.execute(script, vec![band.into()]).await.unwrap()).unwrap();
    assert_eq!(outcomes.first().map(String::as_str), Some("no_data"), "the first hour is too short: {outcomes:?}");
    assert!(outcomes.iter().any(|o| o == "pass"), "{outcomes:?}");
    assert_eq!(outcomes.last().map(String::as_str), Some("fail"), "{outcomes:?}");
    let check =
        admin.text_of(&format!(r#".health-report[data-environment="production"] tr[data-guardrail="{id}"]"#)).await;
    assert!(check.contains("vs v4 over the same minutes") && check.contains("observing"), "{check}");
    super::scroll_to(&admin, r#"figure[data-key="latency_ms"]"#).await;
    admin.screenshot("version-replay-band").await;

    // A comparison rule is added through the form: its own fields replace the threshold's.
    c.goto(&app.url("/models/fraud-detector")).await.unwrap();
    admin.wait_hydrated().await;
    let form = admin.wait_for("#guardrails > form.guardrail-form").await;
    let field = |name: &str| format!(r#"#guardrails > form.guardrail-form [name="{name}"]"#);
    form.find(Locator::Css(r#"select[name="kind"]"#)).await.unwrap().select_by_value("comparison").await.unwrap();
    admin
        .eventually("the comparison fields show", || async {
            let threshold = c.find(Locator::Css(&field("threshold"))).await.ok()?;
            let tolerance = c.find(Locator::Css(&field("tolerance"))).await.ok()?;
            (!threshold.is_displayed().await.ok()? && tolerance.is_displayed().await.ok()?).then_some(())
        })
        .await;
    for (name, value) in [("metric", "error_rate"), ("window_size", "120"), ("tolerance", "15"), ("min_points", "20")] {
        let input = c.find(Locator::Css(&field(name))).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    c.find(Locator::Css(&field("test"))).await.unwrap().select_by_value("mann_whitney").await.unwrap();
    form.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    let added = "error_rate (last 120) vs baseline: higher is worse beyond +15 %, Mann–Whitney at 95 %";
    admin
        .eventually("the comparison is listed", || async {
            let table = c.find(Locator::Css("#guardrails table")).await.ok()?.text().await.ok()?;
            table.contains(added).then_some(())
        })
        .await;

    // Enforced from the model page: audited, and the banner now names the comparison with its evidence.
    admin.click_button(&row, "Enforce").await;
    admin
        .eventually("the rule is enforced", || async {
            let row = c.find(Locator::Css(&row)).await.ok()?;
            (row.attr("data-enforced").await.ok()?.as_deref() == Some("true")).then_some(())
        })
        .await;
    let entries = json(app.get("/api/v1/audit?action=guardrail.enforce").await, 200).await;
    assert_eq!(entries["entries"][0]["actor"], "admin");
    let evidence = admin
        .eventually("the banner names the comparison", || async {
            let text = c.find(Locator::Css(banner)).await.ok()?.text().await.ok()?;
            text.contains("vs baseline").then_some(text)
        })
        .await;
    assert!(evidence.contains("% [+") && evidence.contains("vs v4 over the same minutes"), "{evidence}");
    super::scroll_to(&admin, banner).await;
    admin.screenshot("model-failing-banner-evidence").await;
    admin.close().await;

    // The operator's rollback dialog shows why, and the reviewer's card carries the same evidence.
    let operator = Browser::start().await;
    operator.client.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    sign_in(&operator, "operator", DEMO_PASSWORD).await;
    operator.wait_for(banner).await;
    operator.wait_hydrated().await;
    operator.wait_for(&format!("{banner} button.banner-action")).await.click().await.unwrap();
    let why = operator.text_of(".modal .dialog-evidence").await;
    assert!(why.contains("vs baseline") && why.contains("points"), "{why}");
    operator.screenshot("rollback-dialog-evidence").await;
    let reason = operator.wait_for(r#".modal textarea[name="reason"]"#).await;
    reason.send_keys("e2e: slower than v4 beyond tolerance").await.unwrap();
    operator.wait_for(".modal #rollback-request button.primary").await.click().await.unwrap();
    operator.text_of(".toast.ok").await;
    operator.close().await;

    let reviewer = Browser::start().await;
    reviewer.client.goto(&app.url("/sign-in?next=%2Freviews")).await.unwrap();
    sign_in(&reviewer, "reviewer", DEMO_PASSWORD).await;
    let card = reviewer.text_of(".review-card .evidence").await;
    assert!(card.contains("vs baseline") && card.contains("vs v4 over the same minutes"), "{card}");
    reviewer.screenshot("review-card-comparison-evidence").await;
    reviewer.close().await;
}
