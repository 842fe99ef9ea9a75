//! Backup and restore as docs/operations.md tells it: the database (`pg_dump` / SQLite's online
//! `.backup`) and the artifact store copied while the server runs; restored elsewhere, the chain
//! verifies and still holds the checkpoint a monitor kept at backup time, the kept witness from
//! after the backup reads the restore as a cut, and the versions' files are back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use modelgate_tests::{Backend, ServerProcess, TestDb, bearer_client, migrate_with_user, modelgate, on_both_backends};
use serde_json::{Value, json};

use crate::{file_of, register_version_with_file};

on_both_backends!(a_restored_backup_verifies_its_audit_chain);

async fn a_restored_backup_verifies_its_audit_chain(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("modelgate-restore-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = TestDb::create(backend).await;
    let token = migrate_with_user(&db.url, &["operator", "compliance"]);
    let token = token.as_str();
    let witness = dir.join("witness.json");
    let serve = |url: String, artifacts: &Path| {
        let env = [
            ("MODELGATE_ARTIFACT_STORE".to_string(), artifacts.display().to_string()),
            ("MODELGATE_AUDIT_WITNESS_FILE".to_string(), witness.display().to_string()),
        ];
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ServerProcess::start_with_env(&url, &[], &env).await
        }
    };

    let server = serve(db.url.clone(), &dir.join("artifacts")).await;
    let kept_weights = register_version_with_file(&server.base, token, "churn", 1).await;
    // What a monitor keeps: the checkpoint published at the head when the backup starts.
    let kept = witnessed_head(&server.base, token).await;
    std::fs::write(dir.join("kept.json"), kept.to_string()).unwrap();
    back_up(backend, &db.url, &dir.join("backup"));
    copy_tree(&dir.join("artifacts"), &dir.join("artifacts-backup"));
    // Written after the backup: lost by the restore.
    register_version_with_file(&server.base, token, "churn", 2).await;
    let later = witnessed_head(&server.base, token).await;
    assert!(later["seq"].as_i64() > kept["seq"].as_i64());
    assert!(server.terminate().await.status.success());

    let restored = TestDb::create(backend).await;
    restore(backend, &dir.join("backup"), &restored.url);
    copy_tree(&dir.join("artifacts-backup"), &dir.join("artifacts-restored"));

    // On the witness kept after the backup, the restored chain reads as cut short.
    let server = serve(restored.url.clone(), &dir.join("artifacts-restored")).await;
    let status = verify_now(&server.base, token).await;
    let problem = &status["last_verification"]["problem"];
    assert_eq!(problem["seq"].as_i64(), Some(kept["seq"].as_i64().unwrap() + 1), "the cut is named: {status}");
    assert!(server.terminate().await.status.success());

    // The witness moved aside deliberately: the restored chain verifies, online and offline, and
    // still holds the checkpoint kept at backup time.
    std::fs::rename(&witness, dir.join("witness-before-restore.json")).unwrap();
    let server = serve(restored.url.clone(), &dir.join("artifacts-restored")).await;
    let status = verify_now(&server.base, token).await;
    assert!(status["last_verification"]["problem"].is_null(), "{status}");
    assert_eq!(status["last_verification"]["verified_to"], kept["seq"], "{status}");
    let offline = verify_export(&server.base, token, &dir).await;
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stdout));
    assert_eq!(file_of(&server.base, token, "churn", 1).await, Some(kept_weights), "artifacts restored");
    assert_eq!(file_of(&server.base, token, "churn", 2).await, None, "written after the backup");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kept checkpoint once the witness has caught up with the chain's head.
async fn witnessed_head(base: &str, token: &str) -> Value {
    let client = bearer_client(token);
    let started = Instant::now();
    loop {
        let status: Value =
            client.get(format!("{base}/api/v1/audit/status")).send().await.unwrap().json().await.unwrap();
        let latest: Value =
            client.get(format!("{base}/api/v1/audit/checkpoints/latest")).send().await.unwrap().json().await.unwrap();
        if latest["seq"] == status["head_seq"] {
            return latest;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the witness never reached the head: {latest}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// *Verify now* run to its end; the integrity status after it.
async fn verify_now(base: &str, token: &str) -> Value {
    let client = bearer_client(token);
    let started = client.post(format!("{base}/api/v1/audit/verify")).json(&json!({})).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let job: Value = started.json().await.unwrap();
    let done: Value = client
        .get(format!("{base}/api/v1/audit/jobs/{}?wait=30", job["id"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["state"], "done", "{done}");
    client.get(format!("{base}/api/v1/audit/status")).send().await.unwrap().json().await.unwrap()
}

/// `modelgate audit verify` of a JSONL export, with the kept checkpoint.
async fn verify_export(base: &str, token: &str, dir: &Path) -> std::process::Output {
    let client = bearer_client(token);
    let export = client.get(format!("{base}/api/v1/audit/export?format=jsonl")).send().await.unwrap();
    assert_eq!(export.status(), 200);
    std::fs::write(dir.join("export.jsonl"), export.bytes().await.unwrap()).unwrap();
    let keys: Value = client.get(format!("{base}/api/v1/audit/public-key")).send().await.unwrap().json().await.unwrap();
    modelgate()
        .args(["audit", "verify"])
        .arg(dir.join("export.jsonl"))
        .args(["--public-key", keys["current"]["public_key"].as_str().unwrap(), "--checkpoint"])
        .arg(dir.join("kept.json"))
        .output()
        .unwrap()
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap()
}

/// The documented backup of a database in use.
fn back_up(backend: Backend, url: &str, into: &Path) {
    let mut command = match backend {
        Backend::Postgres => {
            let mut c = Command::new("pg_dump");
            c.args(["--format=custom", "--file"]).arg(into).arg(url);
            c
        }
        Backend::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.arg(sqlite_path(url)).arg(format!(".backup '{}'", into.display()));
            c
        }
    };
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The documented restore into an empty database.
fn restore(backend: Backend, from: &Path, url: &str) {
    match backend {
        Backend::Postgres => {
            let out = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname", url])
                .arg(from)
                .output()
                .unwrap();
            assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
        }
        Backend::Sqlite => {
            std::fs::copy(from, sqlite_path(url)).unwrap();
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(out.status.success(), "cp: {}", String::from_utf8_lossy(&out.stderr));
}
