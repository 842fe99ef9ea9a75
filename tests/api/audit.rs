//! The audit log: one entry per write with the right actor and action, nothing for a rolled-back
//! write, tampering caught online and offline, checkpoints, export round trips, search filters,
//! and one unbroken chain from two server processes.

use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use app::domain::{Role, Verification};
use app::server_fns::{
    CreateToken, CreateUser, DeployVersion, EditVersion, QuarantineVersion, ReleaseVersion, ResetPassword, RevokeToken,
    SetUserDisabled, SetUserRoles, SignOut,
};
use leptos::server_fn::ServerFn;
use modelgate_tests::{
    Backend, PASSWORD, Replicas, TestApp, create_user, digest, expect_error, json, on_both_backends, seed_model,
};
use reqwest::Client;
use serde_json::{Value, json};
use server::audit::offline::{Report, verify_file};
use server::audit::signing::{Signer, parse_public_key};
use sqlx::Executor;

/// The newest entry.
async fn latest(app: &TestApp) -> Value {
    json(app.get("/api/v1/audit?limit=1").await, 200).await["entries"][0].clone()
}

/// Runs `write`, then asserts it appended exactly one entry with `action` by `actor`.
async fn expect_one_entry(app: &TestApp, action: &str, actor: &str, write: impl AsyncFnOnce()) -> Value {
    let before = app.audit_head().await;
    write().await;
    let after = app.audit_head().await;
    assert_eq!(after, before + 1, "{action} must append exactly one entry");
    let entry = latest(app).await;
    assert_eq!(entry["seq"], after);
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["actor"], actor, "{action}: {entry}");
    entry
}

async fn call_fn(client: &Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> u16 {
    client.post(app.url(path)).form(form).send().await.unwrap().status().as_u16()
}

on_both_backends!(every_write_appends_exactly_one_entry_with_its_actor);

async fn every_write_appends_exactly_one_entry_with_its_actor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = "tester (token tests)";

    // REST, through an API token.
    let e = expect_one_entry(&app, "model.create", token, async || {
        json(app.post("/api/v1/models", &json!({ "name": "fraud", "owner_team": "risk" })).await, 201).await;
    })
    .await;
    assert_eq!(e["actor_user"], "tester");
    assert_eq!(e["actor_token"], "tests");
    assert_eq!(e["target"], "models/fraud");
    assert_eq!(e["after"]["owner_team"], "risk");
    assert!(e["before"].is_null());
    assert!(e["request_id"].as_str().is_some_and(|r| r.len() >= 32), "{e}");
    assert_eq!(e["client_addr"], "127.0.0.1");
    for n in 1..=2u8 {
        let body = json!({ "artifact_uri": format!("s3://m/{n}"), "artifact_digest": digest(n) });
        let e = expect_one_entry(&app, "version.register", token, async || {
            json(app.post("/api/v1/models/fraud/versions", &body).await, 201).await;
        })
        .await;
        assert_eq!(e["version"], n);
    }
    let e = expect_one_entry(&app, "version.update", token, async || {
        json(app.patch("/api/v1/models/fraud/versions/1", &json!({ "description": "first" })).await, 200).await;
    })
    .await;
    assert_eq!(e["before"]["description"], "");
    assert_eq!(e["after"]["description"], "first");
    let e = expect_one_entry(&app, "version.quarantine", token, async || {
        let body = json!({ "reason": "leaks labels" });
        json(app.post("/api/v1/models/fraud/versions/2/quarantine", &body).await, 200).await;
    })
    .await;
    assert_eq!(e["reason"], "leaks labels");
    expect_one_entry(&app, "version.release", token, async || {
        json(app.delete("/api/v1/models/fraud/versions/2/quarantine").await, 200).await;
    })
    .await;
    expect_one_entry(&app, "environment.create", token, async || {
        json(app.post("/api/v1/environments", &json!({ "name": "canary" })).await, 201).await;
    })
    .await;
    let e = expect_one_entry(&app, "deployment.deploy", token, async || {
        let body = json!({ "version": 1, "reason": "first release" });
        json(app.post("/api/v1/models/fraud/environments/production/deploy", &body).await, 201).await;
    })
    .await;
    assert_eq!((e["model"].as_str(), e["environment"].as_str()), (Some("fraud"), Some("production")));
    assert_eq!(e["after"]["version"], 1);
    assert!(e["before"]["version"].is_null());
    expect_one_entry(&app, "user.create", token, async || {
        let body = json!({ "username": "alice", "password": PASSWORD, "roles": ["operator", "admin"] });
        json(app.post("/api/v1/users", &body).await, 201).await;
    })
    .await;
    let e = expect_one_entry(&app, "user.update", token, async || {
        json(app.patch("/api/v1/users/alice", &json!({ "display_name": "Alice" })).await, 200).await;
    })
    .await;
    assert!(!e.to_string().contains("argon2"), "no password hash in the log: {e}");
    let (mut token_id, mut secret) = (0, String::new());
    let (session, _) = app.sign_in("alice", PASSWORD).await;
    let alice = app.session_client(&session.unwrap());
    let e = expect_one_entry(&app, "token.create", "alice", async || {
        let body = json!({ "name": "alices", "roles": ["operator"] });
        let created = json(alice.post(app.url("/api/v1/tokens")).json(&body).send().await.unwrap(), 201).await;
        token_id = created["info"]["id"].as_i64().unwrap();
        secret = created["token"].as_str().unwrap().to_string();
    })
    .await;
    assert!(!e.to_string().contains(&secret), "no token secret in the log: {e}");
    expect_one_entry(&app, "token.revoke", token, async || {
        json(app.delete(&format!("/api/v1/tokens/{token_id}")).await, 200).await;
    })
    .await;

    // Sessions: failed sign-in, sign-in, then server functions through the session.
    let e = expect_one_entry(&app, "session.sign_in_failed", "anonymous", async || {
        assert!(app.sign_in("alice", "wrong password!").await.0.is_none());
    })
    .await;
    assert_eq!(e["target"], "users/alice");
    assert_eq!(e["reason"], "wrong password");
    let mut cookie = String::new();
    expect_one_entry(&app, "session.sign_in", "alice", async || {
        cookie = app.sign_in("alice", PASSWORD).await.0.unwrap();
    })
    .await;
    let session = app.session_client(&cookie);
    // Each server function's path, the action it records and its form fields.
    type Call<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);
    let calls: Vec<Call> = vec![
        (
            <EditVersion as ServerFn>::PATH,
            "version.update",
            vec![("model", "fraud".into()), ("number", "1".into()), ("description", "x".into()), ("tags", "a".into())],
        ),
        (
            <QuarantineVersion as ServerFn>::PATH,
            "version.quarantine",
            vec![("model", "fraud".into()), ("number", "2".into()), ("reason", "drift".into())],
        ),
        (
            <ReleaseVersion as ServerFn>::PATH,
            "version.release",
            vec![("model", "fraud".into()), ("number", "2".into())],
        ),
        (
            <DeployVersion as ServerFn>::PATH,
            "deployment.deploy",
            vec![
                ("model", "fraud".into()),
                ("environment", "production".into()),
                ("version", "2".into()),
                ("reason", "better".into()),
            ],
        ),
        (
            <CreateUser as ServerFn>::PATH,
            "user.create",
            vec![
                ("username", "bob".into()),
                ("display_name", "Bob".into()),
                ("password", PASSWORD.into()),
                ("roles[viewer]", "on".into()),
            ],
        ),
        (
            <SetUserDisabled as ServerFn>::PATH,
            "user.update",
            vec![("username", "bob".into()), ("disabled", "true".into())],
        ),
        (
            <ResetPassword as ServerFn>::PATH,
            "user.update",
            vec![("username", "bob".into()), ("password", "another long password".into())],
        ),
        (
            <SetUserRoles as ServerFn>::PATH,
            "user.update",
            vec![("username", "bob".into()), ("roles[reviewer]", "on".into())],
        ),
        (
            <CreateToken as ServerFn>::PATH,
            "token.create",
            vec![
                ("name", "mine".into()),
                ("owner", "".into()),
                ("roles[operator]", "on".into()),
                ("expires_in_days", "".into()),
            ],
        ),
    ];
    for (path, action, form) in calls {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let e = expect_one_entry(&app, action, "alice", async || {
            assert_eq!(call_fn(&session, &app, path, &form).await, 200, "{path}");
        })
        .await;
        assert!(e["actor_token"].is_null());
    }
    let mine = latest(&app).await["target"].as_str().unwrap().trim_start_matches("tokens/").to_string();
    expect_one_entry(&app, "token.revoke", "alice", async || {
        assert_eq!(call_fn(&session, &app, <RevokeToken as ServerFn>::PATH, &[("id", &mine)]).await, 200);
    })
    .await;
    expect_one_entry(&app, "session.sign_out", "alice", async || {
        assert!(call_fn(&session, &app, <SignOut as ServerFn>::PATH, &[]).await < 400);
    })
    .await;

    // Reads append nothing.
    let before = app.audit_head().await;
    json(app.get("/api/v1/models/fraud").await, 200).await;
    json(app.get("/api/v1/audit?limit=5").await, 200).await;
    assert_eq!(app.audit_head().await, before);
}

on_both_backends!(a_refused_or_failed_write_leaves_no_entry);

async fn a_refused_or_failed_write_leaves_no_entry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 2).await;
    let viewer = app.client_as("viewer", &[app::domain::Role::Viewer]).await;
    let before = app.audit_head().await;
    // Decided inside the transaction, after writes began: the unique constraint, the CAS, the rules.
    expect_error(app.post("/api/v1/models", &json!({ "name": "m" })).await, 409, Some("name")).await;
    json(app.post("/api/v1/models/m/versions/2/quarantine", &json!({ "reason": "bad" })).await, 200).await;
    let after_quarantine = app.audit_head().await;
    let deploy = json!({ "version": 2, "reason": "try" });
    expect_error(app.post("/api/v1/models/m/environments/staging/deploy", &deploy).await, 409, None).await;
    let lineage =
        json!({ "artifact_uri": "s3://x", "artifact_digest": digest(9), "lineage": { "parent_version": 99 } });
    expect_error(app.post("/api/v1/models/m/versions", &lineage).await, 422, Some("lineage.parent_version")).await;
    let refused = viewer.post(app.url("/api/v1/models")).json(&json!({ "name": "x" })).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(app.audit_head().await, after_quarantine, "only the quarantine was recorded");
    assert_eq!(after_quarantine, before + 1);
    // The version number taken by the rolled-back registration was rolled back too.
    let versions = json(app.get("/api/v1/models/m").await, 200).await;
    assert_eq!(versions["version_count"], 2);
    // And every entry's change exists.
    let page = json(app.get("/api/v1/audit?action=model.create").await, 200).await;
    for e in page["entries"].as_array().unwrap() {
        json(app.get(&format!("/api/v1/{}", e["target"].as_str().unwrap())).await, 200).await;
    }
}

on_both_backends!(the_database_refuses_to_change_entries_and_verification_finds_tampering);

/// A tampering done at the database level, with the append-only triggers out of the way.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Edit,
    Delete,
    Swap,
}

async fn the_database_refuses_to_change_entries_and_verification_finds_tampering(backend: Backend) {
    for (tamper, first_bad) in [(Tamper::Edit, 3), (Tamper::Delete, 5), (Tamper::Swap, 4)] {
        let app = TestApp::spawn(backend).await;
        seed_model(&app, "m", 5).await;
        let intact = app.verify_audit().await;
        assert!(intact["last_verification"]["problem"].is_null(), "{intact}");
        let pool = app.store.db.pool();
        for sql in ["UPDATE audit_entries SET reason = 'x' WHERE seq = 3", "DELETE FROM audit_entries WHERE seq = 3"] {
            let refused = pool.execute(sql).await.expect_err("the trigger refuses");
            assert!(refused.to_string().contains("append-only"), "{refused}");
        }
        match backend {
            Backend::Sqlite => {
                pool.execute("DROP TRIGGER audit_entries_no_update").await.unwrap();
                pool.execute("DROP TRIGGER audit_entries_no_delete").await.unwrap();
            }
            Backend::Postgres => {
                pool.execute("ALTER TABLE audit_entries DISABLE TRIGGER USER").await.unwrap();
            }
        }
        let sql = match tamper {
            Tamper::Edit => "UPDATE audit_entries SET actor = 'someone else' WHERE seq = 3",
            Tamper::Delete => "DELETE FROM audit_entries WHERE seq = 5",
            Tamper::Swap => {
                "UPDATE audit_entries SET seq = CASE seq WHEN 4 THEN -5 ELSE -4 END WHERE seq IN (4, 5); \
                 UPDATE audit_entries SET seq = -seq WHERE seq < 0"
            }
        };
        pool.execute(sql).await.unwrap();

        let status = app.verify_audit().await;
        let problem = &status["last_verification"]["problem"];
        assert_eq!(problem["seq"], first_bad, "{tamper:?} online: {status}");
        assert_eq!(status["last_verification"]["verified_to"], first_bad - 1);

        let (file, key) = export(&app, "").await;
        let report = offline(&file, &key);
        assert_eq!(report.problem.as_ref().map(|p| p.seq), Some(first_bad), "{tamper:?} offline: {report}");
        let _ = std::fs::remove_file(file);
    }
}

/// Downloads a JSONL export (with `filters` as query string) into a temporary file; returns it
/// with the server's public key.
async fn export(app: &TestApp, filters: &str) -> (PathBuf, String) {
    let response = app.get(&format!("/api/v1/audit/export?format=jsonl{filters}")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains(".jsonl"));
    let body = response.bytes().await.unwrap();
    let file = std::env::temp_dir().join(format!("modelgate-export-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&file, &body).unwrap();
    let keys = json(app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap(), 200).await;
    (file, keys["current"]["public_key"].as_str().unwrap().to_string())
}

fn offline(file: &std::path::Path, key: &str) -> Report {
    verify_file(file, &[parse_public_key(key).unwrap()]).unwrap()
}

on_both_backends!(exports_verify_offline_and_fail_when_modified_or_signed_by_another_key);

async fn exports_verify_offline_and_fail_when_modified_or_signed_by_another_key(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.audit.checkpoint_every = 4).await;
    seed_model(&app, "m", 9).await;
    let (file, key) = export(&app, "").await;
    let report = offline(&file, &key);
    assert!(report.intact(), "{report}");
    assert!(report.contiguous);
    assert_eq!(report.last_seq, Some(app.audit_head().await));
    assert!(report.checkpoints >= 3, "checkpoints every 4 entries and one at the end: {report}");

    // The CLI says the same, with exit codes.
    let cli = |file: &std::path::Path, key: &str| {
        std::process::Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/modelgate"))
            .args(["audit", "verify", file.to_str().unwrap(), "--public-key", key])
            .output()
            .expect("run modelgate audit verify")
    };
    let ok = cli(&file, &key);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK:"));

    // One changed character in entry 6.
    let text = std::fs::read_to_string(&file).unwrap();
    let modified: Vec<String> = text
        .lines()
        .map(|l| if l.contains("\"seq\":6,") { l.replacen("s3://m/", "s3://n/", 1) } else { l.to_string() })
        .collect();
    assert_ne!(modified.join("\n") + "\n", text, "the edit applied");
    let bad = file.with_extension("modified.jsonl");
    std::fs::write(&bad, modified.join("\n")).unwrap();
    assert_eq!(offline(&bad, &key).problem.map(|p| p.seq), Some(6));
    let failed = cli(&bad, &key);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("entry 6"), "{}", String::from_utf8_lossy(&failed.stdout));

    // Checkpoints signed by a key the auditor does not trust.
    let other = Signer::generate();
    let report = offline(&file, &other.public().public_key);
    assert!(!report.intact());
    assert!(report.problem.unwrap().what.contains("not among the trusted keys"));

    // A forged checkpoint line signed by another key, with the real key trusted.
    let forged = other.sign(5, &"0".repeat(64), None, "2026-01-01T00:00:00.000Z");
    let with_forgery = format!("{text}{}\n", json!({ "checkpoint": forged }));
    std::fs::write(&bad, with_forgery).unwrap();
    assert_eq!(offline(&bad, &key).problem.map(|p| p.seq), Some(5));

    // A filtered export: checked entry by entry, still signed at its end.
    let (filtered, _) = export(&app, "&action=version.register").await;
    let report = offline(&filtered, &key);
    assert!(report.intact() && !report.contiguous && report.entries == 9, "{report}");
    for f in [file, bad, filtered] {
        let _ = std::fs::remove_file(f);
    }

    // CSV: a header, one row per entry, then the checkpoints.
    let csv = app.get("/api/v1/audit/export?format=csv&model=m").await;
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("record,seq,at,actor"));
    assert_eq!(csv.lines().filter(|l| l.starts_with("entry,")).count(), 10);
    assert!(csv.lines().any(|l| l.starts_with("checkpoint,")));
}

on_both_backends!(checkpoints_are_signed_on_cadence_and_on_demand_and_published);

async fn checkpoints_are_signed_on_cadence_and_on_demand_and_published(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.audit.checkpoint_every = 5).await;
    seed_model(&app, "m", 9).await;
    let head = app.audit_head().await;
    let published = json(app.anonymous.get(app.url("/api/v1/audit/checkpoints")).send().await.unwrap(), 200).await;
    let seqs: Vec<i64> = published.as_array().unwrap().iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (5..=head).step_by(5).collect::<Vec<_>>());
    let on_demand = json(app.post("/api/v1/audit/checkpoints", &json!({})).await, 201).await;
    assert_eq!(on_demand["seq"], head);
    let keys = json(app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap(), 200).await;
    assert_eq!(keys["current"]["algorithm"], "Ed25519");
    assert!(keys["current"]["pem"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    let key = parse_public_key(keys["current"]["pem"].as_str().unwrap()).unwrap();
    let checkpoint: app::domain::Checkpoint = serde_json::from_value(on_demand).unwrap();
    assert!(server::audit::signing::verify_checkpoint(&checkpoint, &[key]).is_ok());
    let status = json(app.get("/api/v1/audit/status").await, 200).await;
    assert_eq!(status["last_checkpoint"]["seq"], head);
    assert_eq!(status["checkpoint_signature_valid"], true);
}

on_both_backends!(free_text_search_finds_entries_queued_for_the_term_index_and_indexed);

/// An audited write queues its entry's search terms; the indexer moves them into the term index
/// in batches. Search finds an entry the same way either side of that move, paging across both.
async fn free_text_search_finds_entries_queued_for_the_term_index_and_indexed(backend: Backend) {
    // The indexer runs only when the test says.
    let app = TestApp::spawn_with(backend, |c| c.audit.index_ms = 3_600_000).await;
    let pool = app.store.db.pool();
    let queued =
        async || -> i64 { sqlx::query_scalar("SELECT COUNT(*) FROM audit_term_queue").fetch_one(pool).await.unwrap() };
    let indexed =
        async || -> i64 { sqlx::query_scalar("SELECT COUNT(*) FROM audit_terms").fetch_one(pool).await.unwrap() };
    let seqs = |q: &str| {
        let url = format!("/api/v1/audit?{q}");
        let app = &app;
        async move {
            let page = json(app.get(&url).await, 200).await;
            let seqs: Vec<i64> =
                page["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
            (seqs, page["next_before"].as_i64())
        }
    };
    seed_model(&app, "alpha", 3).await;
    let (older, _) = seqs("q=alpha").await;
    assert_eq!(older.len(), 4, "the model and its three versions, found in the queue: {older:?}");
    assert_eq!(indexed().await, 0);
    assert_eq!(queued().await, app.audit_head().await, "every entry's terms wait in the queue");

    let moved = app.store.index_audit_terms().await.unwrap();
    assert_eq!(moved, app.audit_head().await as u64);
    assert_eq!((queued().await, app.store.index_audit_terms().await.unwrap()), (0, 0));
    assert!(indexed().await > 0);
    assert_eq!(seqs("q=alpha").await.0, older, "the same entries, found in the index");

    // Newer entries queued, older ones indexed: one page and a cursor cross the boundary.
    let reason = json!({ "version": 2, "reason": "alpha canary" });
    json(app.post("/api/v1/models/alpha/environments/staging/deploy", &reason).await, 201).await;
    seed_model(&app, "alphabet", 1).await;
    assert!(queued().await > 0);
    let (all, none) = seqs("q=alpha&limit=50").await;
    assert_eq!((all.len(), none), (5, None), "four indexed and the queued deploy: {all:?}");
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    let (first, cursor) = seqs("q=alpha&limit=3").await;
    let (rest, end) = seqs(&format!("q=alpha&limit=3&before={}", cursor.unwrap())).await;
    assert_eq!(([first, rest].concat(), end), (all.clone(), None));
    assert_eq!(seqs("q=canary%20alpha").await.0, vec![all[0]], "every word, in the queue");
    assert_eq!(seqs("q=alphabet").await.0.len(), 2, "a whole word, not a prefix");
    let csv = app.get("/api/v1/audit/export?format=csv&q=alpha").await.text().await.unwrap();
    assert_eq!(csv.lines().filter(|l| l.starts_with("entry,")).count(), 5, "the export reads both");

    app.store.index_audit_terms().await.unwrap();
    assert_eq!(queued().await, 0);
    assert_eq!(seqs("q=alpha&limit=50").await.0, all, "all found in the index alone");
}

on_both_backends!(a_search_while_the_indexer_moves_entries_misses_none);

/// Search reads the queue of waiting terms and the term index in two statements while the indexer
/// moves entries from one to the other: every entry written before a search began is found, however
/// the move falls between the two reads.
async fn a_search_while_the_indexer_moves_entries_misses_none(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.audit.index_ms = 3_600_000).await;
    let written = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let writer = async {
        for i in 0..100 {
            json(app.post("/api/v1/models", &json!({ "name": format!("needle-{i}") })).await, 201).await;
            written.store(i + 1, SeqCst);
        }
        done.store(true, SeqCst);
    };
    let indexer = async {
        while !done.load(SeqCst) {
            app.store.index_audit_terms().await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let searcher = async {
        let mut searches = 0;
        while !done.load(SeqCst) {
            let before = written.load(SeqCst);
            let page = json(app.get("/api/v1/audit?q=needle&limit=200").await, 200).await;
            let found = page["entries"].as_array().unwrap().len();
            assert!(found >= before, "search {searches} found {found} of the {before} entries written before it");
            searches += 1;
        }
        searches
    };
    let ((), (), searches) = tokio::join!(writer, indexer, searcher);
    assert!(searches > 20, "only {searches} searches ran beside the indexer");
}

on_both_backends!(search_filters_and_pages_with_a_cursor);

async fn search_filters_and_pages_with_a_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "alpha", 3).await;
    app.clock.advance(86_400_000);
    seed_model(&app, "beta", 2).await;
    let deploy = json!({ "version": 1, "reason": "needle in the haystack" });
    json(app.post("/api/v1/models/beta/environments/staging/deploy", &deploy).await, 201).await;
    let page = |q: &str| {
        let q = q.to_string();
        let app = &app;
        async move { json(app.get(&format!("/api/v1/audit?{q}")).await, 200).await }
    };
    let count = |v: &Value| v["entries"].as_array().unwrap().len();
    assert_eq!(count(&page("model=alpha").await), 4);
    assert_eq!(count(&page("model=alpha&version=2").await), 1);
    assert_eq!(count(&page("action=model.create").await), 2);
    assert_eq!(count(&page("environment=staging").await), 1);
    assert_eq!(count(&page("q=NEEDLE").await), 1);
    assert_eq!(count(&page("q=haystack%20needle").await), 1, "every word must match");
    assert_eq!(count(&page("q=needle%20absent").await), 0);
    assert_eq!(count(&page("q=alpha&action=version.register").await), 3, "words of the target");
    assert_eq!(count(&page("actor=tester&model=beta").await), 4);
    assert_eq!(count(&page("actor=nobody").await), 0);
    assert_eq!(count(&page("from=2026-01-02&model=beta").await), 4);
    assert_eq!(count(&page("to=2026-01-02&action=version.register").await), 3);
    // Sign-ins, failed ones and sign-outs can be left out.
    create_user(&app.store, "someone", &[Role::Viewer]).await;
    assert!(app.sign_in("someone", PASSWORD).await.0.is_some());
    assert!(app.sign_in("someone", "not the password").await.0.is_none());
    let actions = |v: &Value| -> Vec<String> {
        v["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
    };
    let everything = actions(&page("limit=200").await);
    assert!(everything.contains(&"session.sign_in".into()) && everything.contains(&"session.sign_in_failed".into()));
    let without = actions(&page("limit=200&sessions=false").await);
    assert_eq!(without.len(), everything.len() - 2, "{without:?}");
    assert!(without.iter().all(|a| !a.starts_with("session.")), "{without:?}");
    assert_eq!(actions(&page("limit=200&sessions=true").await), everything);
    expect_error(app.get("/api/v1/audit?sessions=maybe").await, 422, Some("sessions")).await;
    // Pages of two, newest first, walked with the cursor.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let p = page(&format!("model=alpha&limit=2{cursor}")).await;
        seen.extend(p["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
        match p["next_before"].as_i64() {
            Some(next) => cursor = format!("&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let one = json(app.get(&format!("/api/v1/audit/{}", seen[0])).await, 200).await;
    assert_eq!(one["seq"], seen[0]);
    expect_error(app.get("/api/v1/audit?from=yesterday").await, 422, Some("from")).await;
    expect_error(app.get("/api/v1/audit?q=-").await, 422, Some("q")).await;

    // Entry times never go backwards, even when a writer's clock does.
    let newest = json(app.get("/api/v1/audit?limit=1").await, 200).await["entries"][0]["at"].clone();
    app.clock.advance(-3_600_000);
    seed_model(&app, "gamma", 0).await;
    let after = json(app.get("/api/v1/audit?limit=1").await, 200).await["entries"][0]["at"].clone();
    assert!(after.as_str() >= newest.as_str(), "{after} after {newest}");
    assert_eq!(count(&page("from=2026-01-02&model=gamma").await), 1);
    expect_error(app.get("/api/v1/audit?limit=1000").await, 422, Some("limit")).await;
    expect_error(app.get("/api/v1/audit/abc").await, 422, Some("seq")).await;
    expect_error(app.get("/api/v1/audit/999999").await, 404, None).await;
}

/// Two `modelgate serve` processes on one PostgreSQL database, 10,000 audited changes between
/// them from 16 concurrent clients: the chain stays one line with no gaps and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_append_one_unbroken_chain() {
    const CHANGES: usize = 10_000;
    const CLIENTS: usize = 16;
    let Replicas { servers, client, .. } = &Replicas::start(&["operator", "compliance"]).await;
    let status = |base: String| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}/api/v1/audit/status")).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let start = status(servers[0].base.clone()).await["head_seq"].as_i64().unwrap();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base) = (client.clone(), servers[c % 2].base.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c..CHANGES).step_by(CLIENTS) {
                let body = json!({ "name": format!("model-{i}") });
                let r = client.post(format!("{base}/api/v1/models")).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201, "change {i}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Verification runs as a job on the replica asked; the other follows it through the database,
    // and a second request while it runs joins it.
    let started = client.post(format!("{}/api/v1/audit/verify", servers[1].base)).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    let again = client.post(format!("{}/api/v1/audit/verify", servers[0].base)).send().await.unwrap();
    let again: Value = again.json().await.unwrap();
    if again["state"] == "running" {
        assert_eq!(again["id"], started["id"], "one verification at a time: {again}");
    }
    let job = format!("{}/api/v1/audit/jobs/{}?wait=30", servers[0].base, started["id"]);
    let job: Value = client.get(job).send().await.unwrap().json().await.unwrap();
    assert_eq!(job["state"], "done", "{job}");
    let verified = status(servers[1].base.clone()).await;
    let head = verified["head_seq"].as_i64().unwrap();
    assert_eq!(head, start + CHANGES as i64, "one entry per change");
    let v = &verified["last_verification"];
    assert!(v["problem"].is_null(), "{verified}");
    assert_eq!(v["entries"], head, "every sequence number from 1 to the head, once");
    assert_eq!(v["verified_to"], head);
    let seen = status(servers[0].base.clone()).await;
    assert_eq!(seen["head_hash"], verified["head_hash"], "both processes see the same head");
}

on_both_backends!(verify_now_runs_as_one_background_job_whose_progress_every_request_sees);

async fn verify_now_runs_as_one_background_job_whose_progress_every_request_sees(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 3).await;
    // A verification held at its first progress report until the test lets it go on.
    let (held, release) = app.held_verification("tester").await;
    let url = format!("/api/v1/audit/jobs/{held}");
    let mut job = json(app.get(&url).await, 200).await;
    for _ in 0..50 {
        if job["done"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        job = json(app.get(&url).await, 200).await;
    }
    assert_eq!(
        (job["state"].as_str(), job["done"].as_i64(), job["total"].as_i64()),
        (Some("running"), Some(1), Some(4)),
        "{job}"
    );
    assert_eq!(job["kind"], "audit.verify");
    // What a reloaded page reads: the running job with its progress.
    let status = json(app.get("/api/v1/audit/status").await, 200).await;
    assert_eq!(status["verifying"]["id"], held, "{status}");
    assert!(status["last_verification"].is_null(), "{status}");
    // Asking again while it runs joins it; a compliance officer may follow it, a viewer may not.
    let again = app.post("/api/v1/audit/verify", &json!({})).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["location"], url.as_str());
    assert_eq!(json(again, 202).await["id"], held);
    let compliance = app.client_as("auditor", &[Role::Compliance]).await;
    assert_eq!(compliance.get(app.url(&url)).send().await.unwrap().status(), 200);
    let viewer = app.client_as("onlooker", &[Role::Viewer]).await;
    assert_eq!(viewer.get(app.url(&url)).send().await.unwrap().status(), 403);
    assert_eq!(viewer.post(app.url("/api/v1/audit/verify")).json(&json!({})).send().await.unwrap().status(), 403);
    expect_error(app.get(&format!("{url}?wait=31")).await, 422, Some("wait")).await;
    expect_error(app.get("/api/v1/audit/jobs/abc").await, 422, Some("id")).await;
    expect_error(app.get("/api/v1/audit/jobs/999999").await, 404, None).await;

    release.send(()).unwrap();
    let done = json(app.get(&format!("{url}?wait=30")).await, 200).await;
    assert_eq!(done["state"], "done", "{done}");
    let verification: Verification = serde_json::from_value(done["result"].clone()).unwrap();
    assert!(verification.problem.is_none(), "{verification:?}");
    let head = app.audit_head().await;
    assert_eq!(verification.verified_to, head);
    let status = json(app.get("/api/v1/audit/status").await, 200).await;
    assert!(status["verifying"].is_null(), "{status}");
    assert_eq!(status["last_verification"]["verified_to"], head, "{status}");

    // A job whose server stopped reporting reads as failed, and does not block the next one.
    let stale = app.clock.now_ms() - 60_000;
    app.store
        .db
        .pool()
        .execute(
            sqlx::query(
                "INSERT INTO jobs (kind, scope, state, requested_by, started_at, updated_at) \
             VALUES ('audit.verify', '', 'running', 'gone', $1, $1)",
            )
            .bind(stale),
        )
        .await
        .unwrap();
    let status = json(app.get("/api/v1/audit/status").await, 200).await;
    assert_eq!(status["verifying"]["state"], "failed", "{status}");
    assert_eq!(status["verifying"]["error"], "the server running it stopped");
    assert_eq!(status["last_verification"]["verified_to"], head, "the last finished one still counts");
    let next = json(app.post("/api/v1/audit/verify", &json!({})).await, 202).await;
    assert!(next["id"].as_i64() > status["verifying"]["id"].as_i64(), "{next}");
    let next = json(app.get(&format!("/api/v1/audit/jobs/{}?wait=30", next["id"])).await, 200).await;
    assert_eq!(next["state"], "done", "{next}");
}

on_both_backends!(an_export_job_writes_a_verifiable_file_to_download_and_replaces_the_one_before);

async fn an_export_job_writes_a_verifiable_file_to_download_and_replaces_the_one_before(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_model(&app, "m", 4).await;
    seed_model(&app, "other", 2).await;
    // Runs an export job to its end: the job, and its file as downloaded.
    let run = |body: Value| {
        let app = &app;
        async move {
            let started = app.post("/api/v1/audit/exports", &body).await;
            assert_eq!(started.status(), 202);
            let location = started.headers()["location"].to_str().unwrap().to_string();
            let id = json(started, 202).await["id"].as_i64().unwrap();
            assert_eq!(location, format!("/api/v1/audit/jobs/{id}"));
            let job = json(app.get(&format!("{location}?wait=30")).await, 200).await;
            assert_eq!((job["kind"].as_str(), job["state"].as_str()), (Some("audit.export"), Some("done")), "{job}");
            (job, app.get(&format!("{location}/file")).await)
        }
    };
    let (job, download) = run(json!({ "format": "jsonl", "filters": { "model": "m" } })).await;
    assert_eq!(download.status(), 200);
    let file = &job["result"];
    assert_eq!(download.headers()["content-length"].to_str().unwrap(), file["size"].to_string());
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.contains(file["name"].as_str().unwrap()) && disposition.ends_with(".jsonl\""), "{disposition}");
    let body = download.bytes().await.unwrap();
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)), file["sha256"].as_str().unwrap());
    // What the search lists for the filter, and what the offline verifier proves of the file.
    let listed = json(app.get("/api/v1/audit?model=m&limit=200").await, 200).await["entries"].as_array().unwrap().len();
    assert_eq!(file["entries"], listed as i64);
    let path = std::env::temp_dir().join(format!("modelgate-export-job-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&path, &body).unwrap();
    let keys = json(app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap(), 200).await;
    let report = offline(&path, keys["current"]["public_key"].as_str().unwrap());
    assert!(report.intact(), "{report}");
    assert_eq!(report.entries as usize, listed);
    let _ = std::fs::remove_file(path);

    // A newer export of the same user replaces the file of the one before; CSV too.
    let first = job["id"].as_i64().unwrap();
    let (csv, download) = run(json!({ "format": "csv" })).await;
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = download.text().await.unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("entry,")).count() as i64,
        csv["result"]["entries"].as_i64().unwrap()
    );
    let gone = expect_error(app.get(&format!("/api/v1/audit/jobs/{first}/file")).await, 404, None).await;
    assert!(gone["error"]["message"].as_str().unwrap().contains("replaced by a newer one"), "{gone}");
    // Another user's exports are their own.
    let auditor = app.client_as("auditor", &[Role::Compliance]).await;
    let theirs = auditor.post(app.url("/api/v1/audit/exports")).json(&json!({})).send().await.unwrap();
    assert_eq!(theirs.status(), 202);
    let theirs: Value = theirs.json().await.unwrap();
    let waited = auditor.get(app.url(&format!("/api/v1/audit/jobs/{}?wait=30", theirs["id"]))).send().await.unwrap();
    assert_eq!(waited.json::<Value>().await.unwrap()["state"], "done");
    let csv_file = app.get(&format!("/api/v1/audit/jobs/{}/file", csv["id"])).await;
    assert_eq!(csv_file.status(), 200, "not replaced by someone else's export");

    // Bad requests name the field and start nothing; a viewer may not export; a verification
    // wrote no file.
    expect_error(
        app.post("/api/v1/audit/exports", &json!({ "filters": { "from": "yesterday" } })).await,
        422,
        Some("from"),
    )
    .await;
    expect_error(app.post("/api/v1/audit/exports", &json!({ "format": "pdf" })).await, 422, Some("format")).await;
    expect_error(app.post("/api/v1/audit/exports", &json!({ "sort": "asc" })).await, 422, None).await;
    let viewer = app.client_as("onlooker", &[Role::Viewer]).await;
    let refused = viewer.post(app.url("/api/v1/audit/exports")).json(&json!({})).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let verification = json(app.post("/api/v1/audit/verify", &json!({})).await, 202).await;
    expect_error(app.get(&format!("/api/v1/audit/jobs/{}/file", verification["id"])).await, 404, None).await;
}
