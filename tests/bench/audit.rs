//! Audit log benchmark (see `scripts/bench.sh`): what appending adds to a write on SQLite, how
//! fast an export verifies offline, and filtered searches over a log of a million entries.
//!
//! Usage: `auditbench [--entries N] [--writes N] [--verify-entries N]`

use std::time::{Duration, Instant};

use app::backend::AuditTrail;
use app::domain::{AuditAction, AuditEntry, AuditQuery, Caller, JobState, Origin, Role, Roles, Verification};
use modelgate_tests::number_arg;
use serde_json::json;
use server::audit::chain::{GENESIS_HASH, canonical_entry, entry_hash, entry_time};
use server::audit::merkle::{Frontier, digest};
use server::audit::offline::{EXPORT_FORMAT, entry_line, verify_file};
use server::audit::signing::{Signer, parse_public_key};
use server::audit::{AuditActor, AuditLog, Change, Target, append, insert_entry};
use server::clock::Clock;
use server::db::Db;
use server::identity::AuthSettings;
use server::store::Store;
use sqlx::Executor;

/// The allocator the `modelgate` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

fn report(name: &str, samples: &mut [Duration]) {
    println!(
        "{name:<44} p50 {:>8.3} ms   p99 {:>8.3} ms   n={}",
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        samples.len()
    );
}

async fn store(dir: &std::path::Path) -> Store {
    let db = Db::connect(&format!("sqlite://{}", dir.join("audit-bench.db").display()), 8).await.unwrap();
    db.migrate().await.unwrap();
    Store::new(db, Clock::system(), AuditLog::new(Signer::generate(), 1000, Clock::system()))
        .with_identity(AuthSettings::default())
}

/// A realistic entry: a version's state before and after an edit.
fn synthetic(seq: i64, prev_hash: &str, at_ms: i64) -> AuditEntry {
    let model = format!("model-{}", seq % 1000);
    let version = seq % 40 + 1;
    let state = |description: &str| {
        json!({
            "model": model, "number": version, "artifact_uri": format!("s3://models/{model}/{version}/model.onnx"),
            "artifact_digest": format!("sha256:{:064x}", seq), "framework": "onnx",
            "parameters": { "learning_rate": "0.01", "max_depth": "6" }, "description": description,
            "tags": ["fraud", "gbm"], "created_at": "2026-01-01T00:00:00Z", "created_by": "ci",
        })
    };
    let action = AuditAction::ALL[(seq % AuditAction::ALL.len() as i64) as usize];
    let mut entry = AuditEntry {
        seq,
        at: entry_time(at_ms),
        actor: format!("user-{} (token ci)", seq % 50),
        actor_user: Some(format!("user-{}", seq % 50)),
        actor_token: Some("ci".into()),
        action: action.as_str().into(),
        target: format!("models/{model}/versions/{version}"),
        model: Some(model.clone()),
        version: Some(version),
        environment: Some(["staging", "production", "canary"][(seq % 3) as usize].into()),
        before: Some(state("before")),
        after: Some(state(&format!("edit {seq}"))),
        reason: (seq % 7 == 0).then(|| format!("ticket OPS-{seq}")),
        request_id: Some(format!("{:032x}", seq)),
        client_addr: Some("10.0.0.7".into()),
        prev_hash: prev_hash.into(),
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    entry
}

/// Times one small write with and without its audit append, interleaved.
async fn append_overhead(writes: usize) {
    let dir = tempdir();
    let store = store(&dir).await;
    let pool = store.db.pool();
    pool.execute("INSERT INTO environments (name, description, position, created_at) VALUES ('bench', '', 99, 0)")
        .await
        .unwrap();
    let (mut plain, mut audited, mut appends) = (Vec::new(), Vec::new(), Vec::new());
    let actor = AuditActor::system("bench");
    for i in 0..writes {
        for with_audit in [false, true] {
            let started = Instant::now();
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("UPDATE environments SET description = $1 WHERE name = 'bench'")
                .bind(format!("write {i}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            if with_audit {
                let appended = Instant::now();
                let change = Change::new(AuditAction::EnvironmentCreate, Target::environment("bench"))
                    .before(&json!({ "description": format!("write {}", i.saturating_sub(1)) }))
                    .after(&json!({ "description": format!("write {i}") }));
                append(&mut tx, &store.audit, actor.clone(), change).await.unwrap();
                appends.push(appended.elapsed());
            }
            tx.commit().await.unwrap();
            if with_audit { &mut audited } else { &mut plain }.push(started.elapsed());
        }
    }
    println!("== append cost on SQLite (WAL, synchronous=FULL), {writes} writes each");
    report("write without audit (update + commit)", &mut plain);
    report("write with audit (update + append + commit)", &mut audited);
    report("the append alone (inside the transaction)", &mut appends);
    println!(
        "{:<44} {:>+8.3} ms (target ≤ 1 ms)",
        "added at p99",
        percentile(&mut audited, 0.99) - percentile(&mut plain, 0.99)
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Writes a signed export of `n` synthetic entries and times `verify_file` on it.
fn offline_verify(n: usize) {
    let dir = tempdir();
    let file = dir.join("export.jsonl");
    let signer = Signer::generate();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    use std::io::Write;
    writeln!(out, "{}", json!({ EXPORT_FORMAT: 2 })).unwrap();
    let mut prev = GENESIS_HASH.to_string();
    let mut checkpoints = Vec::new();
    let mut tree = Frontier::default();
    for seq in 1..=n as i64 {
        let e = synthetic(seq, &prev, 1_767_225_600_000 + seq * 1000);
        tree.push(digest(&e.hash).unwrap());
        if seq % 1000 == 0 || seq == n as i64 {
            checkpoints.push(signer.sign(seq, &e.hash, tree.root_hex(), &e.at));
        }
        out.write_all(&entry_line(&canonical_entry(&e), &e.hash)).unwrap();
        prev = e.hash;
    }
    for c in checkpoints {
        writeln!(out, "{}", json!({ "checkpoint": c })).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&file).unwrap().len();
    let key = parse_public_key(&signer.public().public_key).unwrap();
    let started = Instant::now();
    let report = verify_file(&file, &[key]).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.intact(), "{report}");
    println!("== offline verify of a {n}-entry export ({:.0} MB)", size as f64 / 1e6);
    println!("{report}");
    println!("{:<44} {:>10.0} entries/s (target ≥ 200,000)", "verify_file", n as f64 / seconds);
    std::fs::remove_dir_all(dir).ok();
}

/// Fills a log with `n` chained entries (bulk, bypassing the per-write path) and times searches.
async fn filtered_queries(n: usize) {
    let dir = tempdir();
    let store = store(&dir).await;
    let pool = store.db.pool();
    let started = Instant::now();
    let mut prev = GENESIS_HASH.to_string();
    let year_ms = 365 * 86_400_000_i64;
    let start_ms = 1_735_689_600_000_i64;
    for chunk in (1..=n as i64).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = pool.begin().await.unwrap();
        for &seq in chunk {
            let at = start_ms + seq * year_ms / n as i64;
            let e = synthetic(seq, &prev, at);
            insert_entry(&mut tx, &e, at).await.unwrap();
            prev = e.hash;
        }
        tx.commit().await.unwrap();
    }
    // What the server's indexer does as entries come: their queued search terms into the index.
    while store.index_audit_terms().await.unwrap() > 0 {}
    pool.execute("ANALYZE").await.unwrap();
    println!(
        "== filtered search over {n} entries on SQLite (loaded in {:.0} s), 50 per page",
        started.elapsed().as_secs_f64()
    );
    let caller = Caller {
        user_id: 1,
        username: "bench".into(),
        roles: Roles::from([Role::Compliance]),
        token: None,
        origin: Origin::default(),
        environments: Vec::new(),
    };
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut query = AuditQuery::default();
        f(&mut query);
        query
    };
    // Each search's name and the query of its i-th run.
    type Case<'a> = (&'static str, Box<dyn Fn(usize) -> AuditQuery + 'a>);
    let cases: Vec<Case> = vec![
        ("newest page, no filter", Box::new(|_| q(&|_| {}))),
        ("actor", Box::new(|i| q(&|x| x.actor = Some(format!("user-{}", i % 50))))),
        ("action", Box::new(|i| q(&|x| x.action = Some(AuditAction::ALL[i % 14].as_str().into())))),
        ("model", Box::new(|i| q(&|x| x.model = Some(format!("model-{}", i % 1000))))),
        (
            "model + version",
            Box::new(|i| {
                q(&|x| {
                    x.model = Some(format!("model-{}", i % 1000));
                    x.version = Some((i % 40 + 1) as i64)
                })
            }),
        ),
        ("environment", Box::new(|i| q(&|x| x.environment = Some(["staging", "production", "canary"][i % 3].into())))),
        (
            "time range (one day)",
            Box::new(|i| {
                q(&|x| {
                    x.from = Some(format!("2025-{:02}-{:02}", i % 12 + 1, i % 28 + 1));
                    x.to = Some(format!("2025-{:02}-{:02}", i % 12 + 1, i % 28 + 2))
                })
            }),
        ),
        (
            "actor + action + time range",
            Box::new(|i| {
                q(&|x| {
                    x.actor = Some(format!("user-{}", i % 50));
                    x.action = Some(AuditAction::ALL[i % 14].as_str().into());
                    x.from = Some("2025-03-01".into());
                    x.to = Some("2025-09-01".into())
                })
            }),
        ),
        (
            "deep page (cursor in the middle)",
            Box::new(|i| {
                q(&|x| {
                    x.actor = Some(format!("user-{}", i % 50));
                    x.before = Some(500_000 - i as i64 * 97)
                })
            }),
        ),
        ("free text, common word", Box::new(|_| q(&|x| x.q = Some("ops-".into())))),
        (
            "free text, rare word",
            Box::new(|i| q(&|x| x.q = Some(format!("ops-{}", 7 * (i as i64 * 9973 % (n as i64 / 7)))))),
        ),
    ];
    for (name, make) in cases {
        let mut samples = Vec::new();
        let runs = if name.starts_with("free text") { 30 } else { 200 };
        for i in 0..runs {
            let started = Instant::now();
            let page = store.search_audit(&caller, make(i)).await.unwrap();
            samples.push(started.elapsed());
            std::hint::black_box(page);
        }
        report(name, &mut samples);
    }
    // *Verify now* as the console runs it: a background job, followed until it ends.
    let started = Instant::now();
    let mut job = store.verify_audit(&caller).await.unwrap();
    let mut reported = std::collections::BTreeSet::new();
    while job.state == JobState::Running {
        reported.insert(job.done);
        tokio::time::sleep(Duration::from_millis(200)).await;
        job = store.audit_job(&caller, job.id).await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let verification: Verification =
        serde_json::from_value(job.result.clone().unwrap_or_default()).unwrap_or_else(|e| panic!("{job:?}: {e}"));
    assert!(verification.problem.is_none(), "{verification:?}");
    println!("\n== online verification (verify now, a background job) of the {n}-entry log");
    println!(
        "{:<44} {:>10.1} s  ({:.0} entries/s, progress read at {} different counts)",
        "verify job",
        seconds,
        n as f64 / seconds,
        reported.len()
    );
    std::fs::remove_dir_all(dir).ok();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("modelgate-auditbench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::main]
async fn main() {
    append_overhead(number_arg("--writes", 5000)).await;
    println!();
    offline_verify(number_arg("--verify-entries", 300_000));
    println!();
    filtered_queries(number_arg("--entries", 1_000_000)).await;
}
