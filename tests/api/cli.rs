//! The `modelgate` binary: migrate, seed-demo, and serve with a graceful stop on SIGTERM.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use modelgate_tests::{Backend, TestDb, on_both_backends};

/// The debug binary built by `cargo leptos build` (scripts/test.sh builds it first).
fn modelgate() -> Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/modelgate");
    assert!(path.exists(), "{} is missing: run `cargo leptos build` first", path.display());
    Command::new(path)
}

fn run(args: &[&str], database_url: &str) -> Output {
    let output = modelgate().args(args).env("DATABASE_URL", database_url).output().expect("run modelgate");
    assert!(output.status.success(), "modelgate {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

on_both_backends!(migrate_and_seed_demo_are_idempotent, serve_stops_gracefully_on_sigterm);

async fn migrate_and_seed_demo_are_idempotent(backend: Backend) {
    let db = TestDb::create(backend).await;
    let first = run(&["migrate"], &db.url);
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), "migrations applied");
    run(&["migrate"], &db.url);
    let seeded = run(&["seed-demo"], &db.url);
    assert_eq!(String::from_utf8_lossy(&seeded.stdout).trim(), "demo data seeded");
    let again = run(&["seed-demo"], &db.url);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing seeded"));
}

async fn serve_stops_gracefully_on_sigterm(backend: Backend) {
    let db = TestDb::create(backend).await;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = modelgate()
        .args(["serve", "--demo"])
        .env("DATABASE_URL", &db.url)
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
    let models: serde_json::Value = reqwest::get(format!("{base}/api/v1/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["total"], 4, "--demo seeded the demo models");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(exited.status.success(), "exit status after SIGTERM: {:?}", exited.status);
    let logs = String::from_utf8_lossy(&exited.stdout);
    let first = logs.lines().next().expect("a log line");
    let parsed: serde_json::Value = serde_json::from_str(first).expect("JSON log lines");
    assert_eq!(parsed["level"], "INFO");
    assert!(logs.contains("shutting down"), "{logs}");
}
