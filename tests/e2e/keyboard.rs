//! The rollback dialog by keyboard alone: focus moves in when it opens and stays inside it, Escape
//! closes it from anywhere and gives focus back to its trigger, a new target keeps the typed reason
//! and the focus, and the request goes out with Enter.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};

use crate::browser::Browser;
use crate::{DEMO_PASSWORD, demo_console, sign_in};

const TAB: char = '\u{E004}';
const ENTER: char = '\u{E007}';
const ESCAPE: char = '\u{E00C}';
const SHIFT: char = '\u{E008}';
const UP: char = '\u{E013}';
const DOWN: char = '\u{E015}';

/// Presses each of `keys` (characters or WebDriver key codes) in turn, with Shift held if asked.
async fn press(browser: &Browser, keys: &str, shift: bool) {
    let mut actions = KeyActions::new("keyboard".into());
    if shift {
        actions = actions.then(KeyAction::Down { value: SHIFT });
    }
    for key in keys.chars() {
        actions = actions.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    }
    if shift {
        actions = actions.then(KeyAction::Up { value: SHIFT });
    }
    browser.client.perform_actions(actions).await.unwrap();
}

/// The focused element as a selector-like name: `select[name=to_version]`, `button.primary`.
async fn focused(browser: &Browser) -> String {
    let script = "const e = document.activeElement; \
        return e.tagName.toLowerCase() + (e.name ? `[name=${e.name}]` : '') + [...e.classList].map(c => '.' + c).join('');";
    browser.client.execute(script, vec![]).await.unwrap().as_str().unwrap_or_default().to_string()
}

/// Waits until the focused element's name contains `expected`.
async fn focus_reaches(browser: &Browser, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = focused(browser).await;
        if last.contains(expected) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.screenshot(&format!("failed-focus-{}", expected.replace(['[', ']', '=', '.'], "-"))).await;
    panic!("focus did not reach {expected}: it is on {last}");
}

async fn value_of(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await.prop("value").await.unwrap().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_dialog_works_by_keyboard_alone() {
    let (app, browser) = demo_console().await;
    let c = &browser.client;
    c.goto(&app.url("/sign-in?next=%2Fmodels%2Ffraud-detector")).await.unwrap();
    browser.wait_hydrated().await;
    sign_in(&browser, "operator", DEMO_PASSWORD).await;
    let trigger = r#".failing-banner[data-environment="production"] button.banner-action"#;
    browser.wait_for(trigger).await;
    browser.wait_hydrated().await;

    // Enter on the banner's button opens the dialog with focus on the target picker.
    c.execute(&format!("document.querySelector('{trigger}').focus(); return null;"), vec![]).await.unwrap();
    press(&browser, &ENTER.to_string(), false).await;
    focus_reaches(&browser, "select[name=to_version]").await;
    assert_eq!(value_of(&browser, r#".modal select[name="to_version"]"#).await, "4");

    // Escape closes it, wherever focus is, and focus returns to the button.
    c.execute("document.activeElement.blur(); return null;", vec![]).await.unwrap();
    press(&browser, &ESCAPE.to_string(), false).await;
    browser
        .eventually("the dialog closes", || async {
            c.find(fantoccini::Locator::Css(".modal")).await.is_err().then_some(())
        })
        .await;
    focus_reaches(&browser, "button.danger.banner-action").await;

    // Open again; Tab never leaves the dialog (past its last control it wraps to its first).
    press(&browser, &ENTER.to_string(), false).await;
    focus_reaches(&browser, "select[name=to_version]").await;
    for step in 0..14 {
        press(&browser, &TAB.to_string(), step % 5 == 4).await;
        let inside = c.execute("return document.activeElement.closest('.modal') !== null;", vec![]).await.unwrap();
        assert_eq!(inside, serde_json::Value::Bool(true), "Tab {step} left the dialog for {}", focused(&browser).await);
    }

    // Type the reason, go back to the picker and pick another target: the reason stays, and so
    // does focus on the picker; then back to the proposed v4.
    c.execute("document.querySelector('.modal select[name=\"to_version\"]').focus(); return null;", vec![])
        .await
        .unwrap();
    press(&browser, &TAB.to_string(), false).await;
    focus_reaches(&browser, "textarea[name=reason]").await;
    press(&browser, "keyboard only: v6 is slow", false).await;
    press(&browser, &TAB.to_string(), true).await;
    focus_reaches(&browser, "select[name=to_version]").await;
    press(&browser, &DOWN.to_string(), false).await;
    // v4 may be the last choice: then the other target is above it.
    let back = if value_of(&browser, r#".modal select[name="to_version"]"#).await == "4" {
        press(&browser, &UP.to_string(), false).await;
        DOWN
    } else {
        UP
    };
    browser
        .eventually("the dialog shows the other target", || async {
            let checks = c.find(fantoccini::Locator::Css(".modal .checks")).await.ok()?.text().await.ok()?;
            (!checks.contains("v4 can go live")).then_some(())
        })
        .await;
    focus_reaches(&browser, "select[name=to_version]").await;
    assert_eq!(value_of(&browser, r#".modal textarea[name="reason"]"#).await, "keyboard only: v6 is slow");
    press(&browser, &back.to_string(), false).await;
    browser
        .eventually("the dialog shows v4 again", || async {
            let checks = c.find(fantoccini::Locator::Css(".modal .checks")).await.ok()?.text().await.ok()?;
            checks.contains("v4 can go live").then_some(())
        })
        .await;
    focus_reaches(&browser, "select[name=to_version]").await;
    assert_eq!(value_of(&browser, r#".modal textarea[name="reason"]"#).await, "keyboard only: v6 is slow");
    browser.screenshot("rollback-dialog-keyboard").await;

    // Tab to the request button and press Enter: the request is filed and its note takes focus.
    press(&browser, &TAB.to_string(), false).await;
    focus_reaches(&browser, "textarea[name=reason]").await;
    press(&browser, &TAB.to_string(), false).await;
    focus_reaches(&browser, "button.primary").await;
    press(&browser, &ENTER.to_string(), false).await;
    focus_reaches(&browser, "p.toast.ok").await;
    assert!(browser.text_of(".toast.ok").await.contains("Rollback request #1 filed"));
    let filed = modelgate_tests::json(app.get("/api/v1/rollbacks/1").await, 200).await;
    assert_eq!((filed["to_version"].as_i64(), filed["reason"].as_str()), (Some(4), Some("keyboard only: v6 is slow")));
    assert!(browser.page_errors().await.is_empty(), "{:#?}", browser.page_errors().await);
    browser.close().await;
}
