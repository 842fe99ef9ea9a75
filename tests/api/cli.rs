//! The `modelgate` binary: migrate, seed-demo, and serve with a graceful stop on SIGTERM.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_tests::{Backend, TestDb, bearer_client, on_both_backends};

/// The debug binary built by `cargo leptos build` (scripts/test.sh builds it first).
fn modelgate() -> Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/modelgate");
    assert!(path.exists(), "{} is missing: run `cargo leptos build` first", path.display());
    Command::new(path)
}

/// Runs the binary with `stdin` as standard input; asserts success and returns standard output.
fn run(args: &[&str], database_url: &str, stdin: &str) -> String {
    let mut child = modelgate()
        .args(args)
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run modelgate");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "modelgate {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

on_both_backends!(cli_migrates_seeds_and_manages_users_and_tokens);

async fn cli_migrates_seeds_and_manages_users_and_tokens(backend: Backend) {
    let db = TestDb::create(backend).await;
    assert_eq!(run(&["migrate"], &db.url, "").trim(), "migrations applied");
    run(&["migrate"], &db.url, "");
    let seeded = run(&["seed-demo"], &db.url, "");
    assert!(seeded.starts_with("demo data seeded"), "{seeded}");
    assert!(
        seeded.contains("operator") && seeded.contains("role compliance"),
        "demo sign-ins are printed once: {seeded}"
    );
    assert!(run(&["seed-demo"], &db.url, "").contains("nothing seeded"));

    let added =
        run(&["user", "add", "alice", "--role", "operator", "--role", "reviewer"], &db.url, "a long enough password\n");
    assert_eq!(added.trim(), "user alice created with roles operator, reviewer");
    let token = run(&["token", "create", "--user", "alice", "--name", "ci", "--role", "operator"], &db.url, "");
    let token = token.trim().to_string();
    assert!(token.starts_with("mg_") && token.len() == 67, "{token}");
    serve_stops_gracefully_on_sigterm(&db.url, &token).await;
}

/// Serves the database, reads through the API token, then stops the server with SIGTERM.
async fn serve_stops_gracefully_on_sigterm(database_url: &str, token: &str) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = modelgate()
        .args(["serve", "--demo"])
        .env("DATABASE_URL", database_url)
        .env("MODELGATE_ADDR", format!("127.0.0.1:{port}"))
        .env("MODELGATE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start modelgate serve");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anonymous = reqwest::get(format!("{base}/api/v1/models")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let models: serde_json::Value =
        bearer_client(token).get(format!("{base}/api/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["total"], 4, "the demo models, readable with the CLI-made token");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(exited.status.success(), "exit status after SIGTERM: {:?}", exited.status);
    let logs = String::from_utf8_lossy(&exited.stdout);
    let log_lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(log_lines.iter().any(|l| l["level"] == "INFO"), "JSON log lines: {logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}
