//! Sign-in, sessions, API tokens and throttling (SECURITY.md, "Identity and sessions").

use app::backend::Identity;
use app::domain::{NewToken, Role};
use futures::future::join_all;
use modelgate_tests::{Backend, PASSWORD, TestApp, create_user, expect_error, json, on_both_backends, origin};
use reqwest::header::COOKIE;
use serde_json::json;

on_both_backends!(
    passwords_are_argon2id_and_wrong_ones_are_refused_alike,
    sign_in_rotates_the_session_and_sign_out_ends_it,
    sessions_end_when_idle_and_after_the_absolute_timeout,
    session_cookie_flags_follow_the_configuration,
    revoked_and_expired_tokens_get_401,
    tokens_never_exceed_their_owner,
    failed_sign_ins_are_throttled_without_locking_out_forever,
    disabling_a_user_ends_their_sessions_and_tokens,
    anonymous_pages_lead_to_sign_in,
);

async fn passwords_are_argon2id_and_wrong_ones_are_refused_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'tester'")
        .fetch_one(app.store.db.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    let (cookie, ok) = app.sign_in("tester", PASSWORD).await;
    assert!(cookie.is_some(), "status {}", ok.status());
    let (none, wrong) = app.sign_in("tester", "not the password").await;
    assert!(none.is_none());
    let wrong = json(wrong, 401).await;
    assert_eq!(wrong["message"], "wrong username or password");
    let (_, unknown) = app.sign_in("nobody", "not the password").await;
    let unknown = json(unknown, 401).await;
    assert_eq!(wrong, unknown, "an unknown account and a wrong password look the same");
}

async fn sign_in_rotates_the_session_and_sign_out_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, _) = app.sign_in("tester", PASSWORD).await;
    let (second, _) = app.sign_in("tester", PASSWORD).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first, second, "every sign-in gets a new token");
    let me = |cookie: String| app.anonymous.get(app.url("/api/v1/me")).header(COOKIE, cookie).send();
    assert_eq!(json(me(second.clone()).await.unwrap(), 200).await["username"], "tester");
    let out = app.session_client(&second).post(app.url(&sign_out_path())).send().await.unwrap();
    assert!(out.status().is_redirection() || out.status().is_success(), "{}", out.status());
    assert_eq!(me(second).await.unwrap().status(), 401, "the old cookie is refused after sign-out");
    assert_eq!(me(first).await.unwrap().status(), 200, "other sessions live on");
}

fn sign_out_path() -> String {
    use leptos::server_fn::ServerFn;
    <app::server_fns::SignOut as ServerFn>::PATH.to_string()
}

async fn sessions_end_when_idle_and_after_the_absolute_timeout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = |cookie: &str| app.anonymous.get(app.url("/api/v1/me")).header(COOKIE, cookie.to_string()).send();
    let (idle, _) = app.sign_in("tester", PASSWORD).await;
    let idle = idle.unwrap();
    app.clock.advance(29 * 60_000);
    assert_eq!(me(&idle).await.unwrap().status(), 200, "29 minutes idle is fine");
    app.clock.advance(31 * 60_000);
    assert_eq!(me(&idle).await.unwrap().status(), 401, "31 minutes idle ends the session");

    let (busy, _) = app.sign_in("tester", PASSWORD).await;
    let busy = busy.unwrap();
    for _ in 0..(12 * 3 - 1) {
        app.clock.advance(20 * 60_000);
        assert_eq!(me(&busy).await.unwrap().status(), 200);
    }
    app.clock.advance(21 * 60_000);
    assert_eq!(me(&busy).await.unwrap().status(), 401, "12 hours after sign-in the session ends, however busy");
}

async fn session_cookie_flags_follow_the_configuration(backend: Backend) {
    let plain = TestApp::spawn(backend).await;
    let (_, response) = plain.sign_in("tester", PASSWORD).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("modelgate_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"));
    let secure = TestApp::spawn_with(backend, |c| c.secure_cookies = true).await;
    let (_, response) = secure.sign_in("tester", PASSWORD).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-modelgate_session=") && cookie.contains("; Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
}

async fn revoked_and_expired_tokens_get_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (session, _) = app.sign_in("tester", PASSWORD).await;
    let session = session.unwrap();
    let browser = app.session_client(&session);
    let create = |body: serde_json::Value| browser.post(app.url("/api/v1/tokens")).json(&body).send();
    let created =
        json(create(json!({ "name": "ci", "roles": ["operator"], "expires_in_days": 1 })).await.unwrap(), 201).await;
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with(&created["info"]["prefix"].as_str().unwrap().to_string()));
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1")
        .bind(server::identity::token_hash(&secret))
        .fetch_one(app.store.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1, "only the SHA-256 of the token is stored");
    let with = |token: &str| modelgate_tests::bearer_client(token);
    assert_eq!(with(&secret).get(app.url("/api/v1/models")).send().await.unwrap().status(), 200);
    let listed = json(app.get("/api/v1/tokens").await, 200).await;
    let mine = listed.as_array().unwrap().iter().find(|t| t["name"] == "ci").unwrap();
    assert!(mine["last_used_at"].is_string(), "last use is recorded: {mine}");

    let other = json(create(json!({ "name": "deploy-bot", "roles": ["operator"] })).await.unwrap(), 201).await;
    app.clock.advance(24 * 3_600_000);
    assert_eq!(with(&secret).get(app.url("/api/v1/models")).send().await.unwrap().status(), 401, "expired");

    let other_secret = other["token"].as_str().unwrap();
    let id = other["info"]["id"].as_i64().unwrap();
    json(app.delete(&format!("/api/v1/tokens/{id}")).await, 200).await;
    let refused = with(other_secret).get(app.url("/api/v1/models")).send().await.unwrap();
    let body = expect_error(refused, 401, None).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    expect_error(with("mg_not-a-real-token").get(app.url("/api/v1/me")).send().await.unwrap(), 401, None).await;
}

async fn tokens_never_exceed_their_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.client_as("vic", &[Role::Viewer]).await;
    let body = json!({ "name": "escalate", "roles": ["admin"] });
    expect_error(viewer.post(app.url("/api/v1/tokens")).json(&body).send().await.unwrap(), 403, None).await;
    let input = NewToken { name: "x".into(), roles: vec![Role::Admin], ..NewToken::default() };
    let err = app.store.bootstrap_token("vic", input).await.unwrap_err();
    assert_eq!(err.field(), Some("roles"));
    // Nobody mints a token for someone else, an admin included: a token acts for its creator.
    let for_vic = json!({ "name": "vic-bot", "owner": "vic", "roles": ["viewer"] });
    let (session, _) = app.sign_in("tester", PASSWORD).await;
    let browser = app.session_client(&session.unwrap());
    let refused = browser.post(app.url("/api/v1/tokens")).json(&for_vic).send().await.unwrap();
    let body = expect_error(refused, 403, None).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("acts for the user who creates it"), "{body}");
    let own = json!({ "name": "mine", "owner": "tester", "roles": ["operator"] });
    let created = browser.post(app.url("/api/v1/tokens")).json(&own).send().await.unwrap();
    assert_eq!(json(created, 201).await["info"]["owner"], "tester");
}

on_both_backends!(one_admin_cannot_file_and_approve_a_guarded_rollback_through_minted_tokens);

/// The attack: an admin mints tokens for an operator and a reviewer, to file a production rollback
/// with the first and approve it with the second. Refused at the first step, and nothing stored.
async fn one_admin_cannot_file_and_approve_a_guarded_rollback_through_minted_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (user, role) in [("operator", Role::Operator), ("reviewer", Role::Reviewer)] {
        app.client_as(user, &[role]).await;
    }
    let (session, _) = app.sign_in("tester", PASSWORD).await;
    let admin = app.session_client(&session.unwrap());
    for (owner, role) in [("operator", "operator"), ("reviewer", "reviewer")] {
        let body = json!({ "name": "minted", "owner": owner, "roles": [role] });
        let refused = admin.post(app.url("/api/v1/tokens")).json(&body).send().await.unwrap();
        expect_error(refused, 403, None).await;
    }
    let minted: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.username IN ('operator', 'reviewer') AND t.name = 'minted'")
            .fetch_one(app.store.db.pool())
            .await
            .unwrap();
    assert_eq!(minted, 0, "no token was stored");
}

async fn failed_sign_ins_are_throttled_without_locking_out_forever(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.store;
    // Backoff per account and address: the sixth quick failure from one address waits...
    for _ in 0..5 {
        assert_eq!(store.sign_in("tester", "wrong", &origin("10.0.0.1")).await.unwrap_err().code.status(), 401);
    }
    assert_eq!(store.sign_in("tester", PASSWORD, &origin("10.0.0.1")).await.unwrap_err().code.status(), 429);
    // ...while the real user elsewhere is not slowed down, and the wait is short.
    assert!(store.sign_in("tester", PASSWORD, &origin("10.0.0.2")).await.is_ok());
    app.clock.advance(1_001);
    assert!(store.sign_in("tester", PASSWORD, &origin("10.0.0.1")).await.is_ok());

    // 100 failures within the hour on one account, from many addresses: the 101st is refused,
    // even with the right password...
    for i in 0..95 {
        let err =
            store.sign_in("tester", "wrong", &origin(&format!("10.1.{}.{}", i / 250, i % 250))).await.unwrap_err();
        assert_eq!(err.code.status(), 401, "attempt {i}");
    }
    let refused = store.sign_in("tester", PASSWORD, &origin("10.2.0.1")).await.unwrap_err();
    assert_eq!(refused.code.status(), 429);
    // ...until the window slides past them.
    app.clock.advance(61 * 60_000);
    assert!(store.sign_in("tester", PASSWORD, &origin("10.2.0.1")).await.is_ok());
}

async fn disabling_a_user_ends_their_sessions_and_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = create_user(&app.store, "leaver", &[Role::Operator]).await;
    let (session, _) = app.sign_in("leaver", PASSWORD).await;
    json(app.patch("/api/v1/users/leaver", &json!({ "disabled": true })).await, 200).await;
    let me = app.anonymous.get(app.url("/api/v1/me")).header(COOKIE, session.unwrap()).send().await.unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(modelgate_tests::bearer_client(&token).get(app.url("/api/v1/me")).send().await.unwrap().status(), 401);
    let (none, _) = app.sign_in("leaver", PASSWORD).await;
    assert!(none.is_none(), "a disabled user cannot sign in");
    json(
        app.patch("/api/v1/users/leaver", &json!({ "disabled": false, "password": "a brand new password" })).await,
        200,
    )
    .await;
    assert!(app.sign_in("leaver", "a brand new password").await.0.is_some());
    expect_error(app.patch("/api/v1/users/tester", &json!({ "disabled": true })).await, 422, Some("disabled")).await;
}

async fn anonymous_pages_lead_to_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.anonymous.get(app.url("/models/m?tab=x")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/sign-in?next=%2Fmodels%2Fm%3Ftab%3Dx");
    let sign_in = app.anonymous.get(app.url("/sign-in")).send().await.unwrap();
    assert_eq!(sign_in.status(), 200);
    assert!(sign_in.text().await.unwrap().contains("id=\"sign-in\""));
    for public in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        assert_eq!(app.anonymous.get(app.url(public)).send().await.unwrap().status(), 200, "{public}");
    }
}

on_both_backends!(sign_in_returns_only_to_this_sites_paths_and_never_fails_once_signed_in);

/// `next` after sign-in: a path of this site is followed; anything a browser could take
/// elsewhere (tab or line break inside `//`, backslash, absolute URL) or a `Location` header
/// cannot carry (control characters) goes home instead — never a 500 after the session exists.
async fn sign_in_returns_only_to_this_sites_paths_and_never_fails_once_signed_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cases = [
        ("/models/m?tab=versions", "/models/m?tab=versions"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\\evil.example", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\x0b", "/"),
        ("/\x01", "/"),
        ("/\n", "/"),
    ];
    for (next, expected) in cases {
        let form = [("username", "tester"), ("password", PASSWORD), ("next", next)];
        let response = browser
            .post(app.url(<app::server_fns::SignIn as leptos::server_fn::ServerFn>::PATH))
            .header(reqwest::header::ORIGIN, &app.base)
            .header(reqwest::header::ACCEPT, "text/html")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_redirection(), "{next:?}: {}", response.status());
        assert_eq!(response.headers()["location"], expected, "{next:?}");
    }
}

on_both_backends!(parallel_guesses_are_counted_before_any_is_checked_and_a_spray_cannot_lock_the_user_out);

/// 150 wrong passwords at once for one account from one address: each is counted before its
/// password is checked, so at most the five free attempts reach Argon2 and the rest wait. Then
/// 100 failures from spread addresses lock the account for strangers, not for the user at an
/// address they signed in from before.
async fn parallel_guesses_are_counted_before_any_is_checked_and_a_spray_cannot_lock_the_user_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(app.store.sign_in("tester", PASSWORD, &origin("10.0.0.7")).await.is_ok(), "the user's own address");
    let guesses = (0..150).map(|_| {
        let store = app.store.clone();
        tokio::spawn(
            async move { store.sign_in("tester", "wrong", &origin("10.9.9.9")).await.unwrap_err().code.status() },
        )
    });
    let statuses: Vec<u16> = join_all(guesses).await.into_iter().map(Result::unwrap).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    // However they interleave: when all 150 count before any is checked, none is.
    assert!(checked <= 5, "{checked} of 150 parallel guesses were checked");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 150 - checked, "the rest were refused unchecked");
    let recorded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries WHERE action = 'session.sign_in_failed'")
            .fetch_one(app.store.db.pool())
            .await
            .unwrap();
    assert_eq!(recorded, checked as i64, "one audit entry per checked guess");

    // A spray from many addresses reaches the hard limit of the account...
    app.clock.advance(61 * 60_000);
    for i in 0..100 {
        let err = app.store.sign_in("tester", "wrong", &origin(&format!("10.3.{}.{}", i / 250, i % 250))).await;
        assert_eq!(err.unwrap_err().code.status(), 401, "attempt {i}");
    }
    let stranger = app.store.sign_in("tester", PASSWORD, &origin("10.4.0.1")).await.unwrap_err();
    assert_eq!(stranger.code.status(), 429, "a new address meets the limit");
    // ...and the right password still signs in from the user's known address.
    assert!(app.store.sign_in("tester", PASSWORD, &origin("10.0.0.7")).await.is_ok());
}
