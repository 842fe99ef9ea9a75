//! The `modelgate` binary: migrate, seed-demo, and serve with a graceful stop on SIGTERM.

use modelgate_tests::{Backend, ServerProcess, TestDb, bearer_client, on_both_backends, run_modelgate};

on_both_backends!(cli_migrates_seeds_and_manages_users_and_tokens);

async fn cli_migrates_seeds_and_manages_users_and_tokens(backend: Backend) {
    let db = TestDb::create(backend).await;
    assert_eq!(run_modelgate(&["migrate"], &db.url, "").trim(), "migrations applied");
    run_modelgate(&["migrate"], &db.url, "");
    let seeded = run_modelgate(&["seed-demo"], &db.url, "");
    assert!(seeded.starts_with("demo data seeded"), "{seeded}");
    assert!(
        seeded.contains("operator") && seeded.contains("role compliance"),
        "demo sign-ins are printed once: {seeded}"
    );
    assert!(run_modelgate(&["seed-demo"], &db.url, "").contains("nothing seeded"));

    let added = run_modelgate(
        &["user", "add", "alice", "--role", "operator", "--role", "reviewer"],
        &db.url,
        "a long enough password\n",
    );
    assert_eq!(added.trim(), "user alice created with roles operator, reviewer");
    let token =
        run_modelgate(&["token", "create", "--user", "alice", "--name", "ci", "--role", "operator"], &db.url, "");
    let token = token.trim().to_string();
    assert!(token.starts_with("mg_") && token.len() == 67, "{token}");
    serve_stops_gracefully_on_sigterm(&db.url, &token).await;
}

/// Serves the database, reads through the API token, then stops the server with SIGTERM.
async fn serve_stops_gracefully_on_sigterm(database_url: &str, token: &str) {
    let server = ServerProcess::start(database_url, &["--demo"]).await;
    let base = server.base.clone();
    let anonymous = reqwest::get(format!("{base}/api/v1/models")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let models: serde_json::Value =
        bearer_client(token).get(format!("{base}/api/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["total"], 4, "the demo models, readable with the CLI-made token");

    let exited = server.terminate().await;
    assert!(exited.status.success(), "exit status after SIGTERM: {:?}", exited.status);
    let logs = String::from_utf8_lossy(&exited.stdout);
    let log_lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(log_lines.iter().any(|l| l["level"] == "INFO"), "JSON log lines: {logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}
