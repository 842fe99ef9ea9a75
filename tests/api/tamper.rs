//! The audit log against an attacker: a database cut back or rewritten (append-only triggers
//! dropped) is caught online at the right entry, the signer refuses to sign the shorter chain, and
//! forged exports — entries appended, deleted, reordered or rewritten, checkpoints cut — fail the
//! offline verifier, which also proves a filtered export and that a newer export still holds a
//! checkpoint kept from before.

use std::path::{Path, PathBuf};

use app::domain::{AuditEntry, Checkpoint};
use modelgate_tests::{Backend, TestApp, digest, json, on_both_backends, seed_model};
use serde_json::Value;
use server::audit::chain::{canonical_entry, entry_hash};
use server::audit::offline::{Expectations, Report, entry_line, verify_export};
use server::audit::signing::parse_public_key;

/// A server signing a checkpoint every 5 entries, with 19 or 24 entries (the last four after the
/// last checkpoint) and the head kept outside the database.
async fn logged(backend: Backend) -> TestApp {
    let app = TestApp::spawn_with(backend, |c| c.audit.checkpoint_every = 5).await;
    seed_model(&app, "m", 12).await;
    let mut n = 12u8;
    while app.audit_head().await % 5 != 4 {
        n += 1;
        let body = serde_json::json!({ "artifact_uri": format!("s3://m/m/{n}"), "artifact_digest": digest(n) });
        json(app.post("/api/v1/models/m/versions", &body).await, 201).await;
    }
    app.store.keep_witness().await.unwrap();
    app
}

/// Runs `statements` as an attacker with the database would: append-only triggers dropped first.
async fn tamper(app: &TestApp, backend: Backend, statements: &[String]) {
    let drops: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_entries_no_update",
            "DROP TRIGGER audit_entries_no_delete",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER audit_entries_append_only ON audit_entries",
            "DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints",
        ],
    };
    for sql in drops.iter().map(|s| s.to_string()).chain(statements.iter().cloned()) {
        sqlx::query(&sql).execute(app.store.db.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Deletes entries from `first` on and moves the head back to the entry before.
fn cut_from(first: i64) -> Vec<String> {
    vec![
        format!("DELETE FROM audit_entries WHERE seq >= {first}"),
        // Their search words too, queued or indexed, as a thorough cut would (else the queue's row
        // of a cut entry, not yet indexed, refuses the next entry of that number).
        format!("DELETE FROM audit_term_queue WHERE seq >= {first}"),
        format!("DELETE FROM audit_terms WHERE seq >= {first}"),
        format!(
            "UPDATE audit_head SET seq = {0}, hash = (SELECT hash FROM audit_entries WHERE seq = {0}) WHERE id = 1",
            first - 1
        ),
    ]
}

async fn entry(app: &TestApp, seq: i64) -> AuditEntry {
    serde_json::from_value(json(app.get(&format!("/api/v1/audit/{seq}")).await, 200).await).unwrap()
}

/// Rewrites entries `first..=last` (a new reason each) with hashes recomputed and relinked, as
/// an attacker who knows the hash rule but not the signing key would; moves the head along.
async fn rewrite(app: &TestApp, first: i64, last: i64) -> Vec<String> {
    let mut prev = entry(app, first - 1).await.hash;
    let mut statements = Vec::new();
    for seq in first..=last {
        let mut e = entry(app, seq).await;
        e.reason = Some(format!("forged {seq}"));
        e.prev_hash = prev;
        e.hash = entry_hash(&e);
        statements.push(format!(
            "UPDATE audit_entries SET reason = 'forged {seq}', prev_hash = '{}', hash = '{}' WHERE seq = {seq}",
            e.prev_hash, e.hash
        ));
        prev = e.hash;
    }
    statements.push(format!("UPDATE audit_head SET hash = '{prev}' WHERE id = 1"));
    statements
}

/// Verifies online and returns the first problem's entry and text.
async fn verify_online(app: &TestApp) -> Option<(i64, String)> {
    let status = app.verify_audit().await;
    let problem = &status["last_verification"]["problem"];
    (!problem.is_null()).then(|| (problem["seq"].as_i64().unwrap(), problem["what"].as_str().unwrap().to_string()))
}

on_both_backends!(a_log_cut_back_or_rewritten_in_the_database_is_caught_online_and_never_signed_again);

async fn a_log_cut_back_or_rewritten_in_the_database_is_caught_online_and_never_signed_again(backend: Backend) {
    // The tail cut, checkpoints above it left in place: the stored checkpoints catch it.
    let app = logged(backend).await;
    let head = app.audit_head().await;
    assert!(head > 15, "{head}");
    assert_eq!(verify_online(&app).await, None, "intact before tampering");
    let head = app.audit_head().await;
    app.store.keep_witness().await.unwrap();
    tamper(&app, backend, &cut_from(11)).await;
    let (seq, what) = verify_online(&app).await.expect("a cut tail is caught");
    assert_eq!(seq, 11, "{what}");
    assert!(what.contains(&format!("entries 11 to {head} are missing")), "{what}");
    let refused = app.post("/api/v1/audit/checkpoints", &serde_json::json!({})).await;
    assert_eq!(refused.status(), 409, "no checkpoint is signed over the shorter chain");
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("cut back"), "{body}");
    // New writes go on; their cadence checkpoint is not signed over the cut chain.
    seed_model(&app, "after", 8).await;
    let signed: Vec<Checkpoint> = serde_json::from_value(
        json(app.anonymous.get(app.url("/api/v1/audit/checkpoints")).send().await.unwrap(), 200).await,
    )
    .unwrap();
    assert!(
        signed.iter().all(|c| c.seq <= head),
        "nothing new signed: {:?}",
        signed.iter().map(|c| c.seq).collect::<Vec<_>>()
    );

    // The tail cut and the checkpoints above it deleted too: the kept checkpoint catches it.
    let app = logged(backend).await;
    let head = app.audit_head().await;
    let mut statements = cut_from(11);
    statements.push("DELETE FROM audit_checkpoints WHERE seq >= 11".into());
    tamper(&app, backend, &statements).await;
    let (seq, what) = verify_online(&app).await.expect("caught by the checkpoint kept outside the database");
    assert_eq!(seq, 11, "{what}");
    assert!(what.contains(&format!("to {head} are missing")), "{what}");

    // Only the last entry deleted (after the last stored checkpoint).
    let app = logged(backend).await;
    let head = app.audit_head().await;
    assert_ne!(head % 5, 0, "the last entry has no stored checkpoint of its own");
    tamper(&app, backend, &cut_from(head)).await;
    assert_eq!(verify_online(&app).await.map(|p| p.0), Some(head));

    // Entries after the last stored checkpoint rewritten with recomputed, relinked hashes: the
    // seal each entry carries (a key only the signer holds) names the first one rewritten.
    let app = logged(backend).await;
    let head = app.audit_head().await;
    let last_stored = head / 5 * 5;
    let statements = rewrite(&app, last_stored + 2, head).await;
    tamper(&app, backend, &statements).await;
    let (seq, what) = verify_online(&app).await.expect("a rewritten tail is caught");
    assert_eq!(seq, last_stored + 2, "{what}");
    assert!(what.contains("seal does not match"), "{what}");

    // A rewrite from early on, everything after relinked, the seals taken away too.
    let app = logged(backend).await;
    let head = app.audit_head().await;
    let mut statements = rewrite(&app, 7, head).await;
    statements.push("UPDATE audit_entries SET seal = NULL WHERE seq >= 7".into());
    tamper(&app, backend, &statements).await;
    let (seq, what) = verify_online(&app).await.expect("a rewrite is caught");
    assert_eq!(seq, 7, "{what}");
    assert!(what.contains("no seal"), "{what}");

    // Seals taken away from every entry (as if all predated them): the checkpoints still catch it.
    let app = logged(backend).await;
    let head = app.audit_head().await;
    let mut statements = rewrite(&app, 7, head).await;
    statements.push("UPDATE audit_entries SET seal = NULL".into());
    tamper(&app, backend, &statements).await;
    let (seq, what) = verify_online(&app).await.expect("a rewrite is caught");
    assert_eq!(seq, 6, "{what}");
    assert!(what.contains("entries 6 to 10 differ from the signed checkpoint at 10"), "{what}");
}

/// The export as lines, and the server's public key.
async fn export_lines(app: &TestApp, filters: &str) -> (Vec<String>, String) {
    let body = app.get(&format!("/api/v1/audit/export?format=jsonl{filters}")).await.text().await.unwrap();
    let keys = json(app.anonymous.get(app.url("/api/v1/audit/public-key")).send().await.unwrap(), 200).await;
    (body.lines().map(str::to_string).collect(), keys["current"]["public_key"].as_str().unwrap().to_string())
}

fn write(lines: &[String]) -> PathBuf {
    let file = std::env::temp_dir().join(format!("modelgate-tamper-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

fn check(lines: &[String], key: &str, expect: &Expectations) -> Report {
    let file = write(lines);
    let report = verify_export(&file, &[parse_public_key(key).unwrap()], expect).unwrap();
    std::fs::remove_file(file).ok();
    report
}

fn failed_at(lines: &[String], key: &str) -> (i64, String) {
    let report = check(lines, key, &Expectations::default());
    let problem = report.problem.clone().unwrap_or_else(|| panic!("accepted a forgery: {report}"));
    (problem.seq, problem.what)
}

fn is_entry(line: &str, seq: i64) -> bool {
    line.starts_with("{\"entry\":") && line.contains(&format!("\"seq\":{seq},"))
}

fn is_checkpoint_from(line: &str, seq: i64) -> bool {
    serde_json::from_str::<Value>(line).ok().and_then(|v| v["checkpoint"]["seq"].as_i64()).is_some_and(|s| s >= seq)
}

fn parse_entry(line: &str) -> AuditEntry {
    let line: Value = serde_json::from_str(line).unwrap();
    let mut entry = line["entry"].clone();
    entry["hash"] = line["hash"].clone();
    serde_json::from_value(entry).unwrap()
}

fn line_of(e: &AuditEntry) -> String {
    String::from_utf8(entry_line(&canonical_entry(e), &e.hash)).unwrap().trim_end().to_string()
}

/// Runs `modelgate audit verify` on `lines` with `args`; returns the exit code and stdout.
fn cli(lines: &[String], key: &str, args: &[&str]) -> (Option<i32>, String) {
    let file = write(lines);
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/modelgate");
    let out = std::process::Command::new(binary)
        .args(["audit", "verify", file.to_str().unwrap(), "--public-key", key])
        .args(args)
        .output()
        .unwrap();
    std::fs::remove_file(file).ok();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_exports_fail_offline_at_the_first_bad_entry() {
    let app = logged(Backend::Sqlite).await;
    let (lines, key) = export_lines(&app, "").await;
    let head = app.audit_head().await;
    let report = check(&lines, &key, &Expectations::default());
    assert!(report.intact() && report.contiguous && report.left_out == 0, "{report}");
    assert_eq!((report.last_checkpoint, report.unsigned), (Some(head), 0), "{report}");
    let entry_lines = || lines.iter().filter(|l| l.starts_with("{\"entry\":"));

    // An entry appended after the final checkpoint, linked and hashed like a real one.
    let mut forged = parse_entry(entry_lines().next_back().unwrap());
    forged.seq += 1;
    forged.action = "user.create".into();
    forged.target = "users/backdoor".into();
    forged.prev_hash = forged.hash.clone();
    forged.hash = entry_hash(&forged);
    let mut appended = lines.clone();
    let at = appended.iter().rposition(|l| l.starts_with("{\"entry\":")).unwrap() + 1;
    appended.insert(at, line_of(&forged));
    let (seq, what) = failed_at(&appended, &key);
    assert_eq!(seq, head + 1, "{what}");
    assert!(what.contains("after the last signed checkpoint"), "{what}");
    let (code, out) = cli(&appended, &key, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("FAILED at entry {}", head + 1)), "{out}");
    let (code, out) = cli(&appended, &key, &["--accept-unsigned-tail"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 entries after the last checkpoint are NOT signed"), "{out}");

    // An entry deleted, the header edited to call the export filtered — or removed.
    let deleted: Vec<String> = lines.iter().filter(|l| !is_entry(l, 8)).cloned().collect();
    let mut edited = deleted.clone();
    edited[0] = edited[0].replacen('{', "{\"contiguous\":false,", 1);
    assert_ne!(edited[0], deleted[0]);
    assert_eq!(failed_at(&edited, &key).0, 8);
    assert_eq!(failed_at(&deleted[1..], &key).0, 8);
    assert!(failed_at(&deleted, &key).1.contains("entry 8 is missing"));

    // The tail cut with the final checkpoint: what is left after the last checkpoint is unsigned.
    let cut: Vec<String> =
        lines.iter().filter(|l| !(is_entry_from(l, head - 1) || is_checkpoint_from(l, head))).cloned().collect();
    let last_stored = (head - 2) / 5 * 5;
    assert_eq!(failed_at(&cut, &key).0, last_stored + 1);
    // Cut exactly at a checkpoint, it is a shorter chain — which the checkpoint an auditor kept refutes.
    let at_checkpoint: Vec<String> =
        lines.iter().filter(|l| !(is_entry_from(l, 11) || is_checkpoint_from(l, 11))).cloned().collect();
    assert!(check(&at_checkpoint, &key, &Expectations::default()).intact());
    let kept: Checkpoint =
        serde_json::from_value(json(app.get("/api/v1/audit/status").await, 200).await["last_checkpoint"].clone())
            .unwrap();
    let expect = Expectations { kept: vec![kept.clone()], ..Default::default() };
    let report = check(&at_checkpoint, &key, &expect);
    assert_eq!(report.problem.map(|p| p.seq), Some(11), "the kept checkpoint at {} refutes the cut", kept.seq);

    // The tail rewritten with recomputed hashes: against the final checkpoint, and without it.
    let mut rewritten = lines.clone();
    let mut prev = parse_entry(rewritten.iter().find(|l| is_entry(l, head - 2)).unwrap()).hash;
    for seq in head - 1..=head {
        let i = rewritten.iter().position(|l| is_entry(l, seq)).unwrap();
        let mut e = parse_entry(&rewritten[i]);
        e.reason = Some("forged".into());
        e.prev_hash = prev;
        e.hash = entry_hash(&e);
        prev = e.hash.clone();
        rewritten[i] = line_of(&e);
    }
    let (seq, what) = failed_at(&rewritten, &key);
    assert_eq!(seq, last_stored + 1, "{what}");
    assert!(what.contains(&format!("differ from the signed checkpoint at {head}")), "{what}");
    let unsigned: Vec<String> = rewritten.into_iter().filter(|l| !is_checkpoint_from(l, head)).collect();
    assert_eq!(failed_at(&unsigned, &key).0, last_stored + 1);

    // Two entries swapped.
    let mut reordered = lines.clone();
    let (a, b) = (
        reordered.iter().position(|l| is_entry(l, 4)).unwrap(),
        reordered.iter().position(|l| is_entry(l, 5)).unwrap(),
    );
    reordered.swap(a, b);
    let (seq, what) = failed_at(&reordered, &key);
    assert_eq!(seq, 4, "{what}");

    // A newer export, after more writes, still holds the checkpoint kept before them.
    seed_model(&app, "later", 6).await;
    let (newer, _) = export_lines(&app, "").await;
    let report = check(&newer, &key, &expect);
    assert!(report.intact() && report.checkpoints >= 2, "{report}");
    let kept_file = std::env::temp_dir().join(format!("modelgate-kept-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&kept_file, serde_json::to_string(&kept).unwrap()).unwrap();
    let (code, out) = cli(&newer, &key, &["--checkpoint", kept_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&at_checkpoint, &key, &["--checkpoint", kept_file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    std::fs::remove_file(kept_file).ok();

    // The checkpoint kept outside the database is published; an export made later contains it.
    app.store.keep_witness().await.unwrap();
    let latest: Checkpoint = serde_json::from_value(
        json(app.anonymous.get(app.url("/api/v1/audit/checkpoints/latest")).send().await.unwrap(), 200).await,
    )
    .unwrap();
    assert_eq!(latest.seq, app.audit_head().await);
    seed_model(&app, "further", 2).await;
    let at_latest = format!("&checkpoint={}", latest.seq);
    let expect = Expectations { kept: vec![kept.clone(), latest], ..Default::default() };

    // A filtered export proves its entries with subtree hashes, and the kept checkpoints too.
    let (filtered, _) = export_lines(&app, &format!("&model=later{at_latest}")).await;
    let report = check(&filtered, &key, &expect);
    assert!(report.intact() && !report.contiguous, "{report}");
    assert_eq!(report.entries, 7, "the model and its six versions: {report}");
    assert_eq!(report.entries + report.left_out, app.audit_head().await, "{report}");
    let subtrees = filtered.iter().filter(|l| l.starts_with("{\"subtree\":")).count() as i64;
    assert!(subtrees > 0 && subtrees < report.left_out, "{subtrees} subtree lines for {} entries", report.left_out);
    // An entry taken out of it, or a subtree hash altered, fails.
    let first = report.first_seq.unwrap();
    let without: Vec<String> = filtered.iter().filter(|l| !is_entry(l, first)).cloned().collect();
    assert_eq!(failed_at(&without, &key).0, first);
    let mut altered = filtered.clone();
    let i = altered.iter().position(|l| l.starts_with("{\"subtree\":")).unwrap();
    let mut subtree: Value = serde_json::from_str(&altered[i]).unwrap();
    subtree["subtree"]["hash"] = Value::String("ab".repeat(32));
    altered[i] = subtree.to_string();
    assert!(failed_at(&altered, &key).1.contains("differ from the Merkle root"));
}

fn is_entry_from(line: &str, seq: i64) -> bool {
    line.starts_with("{\"entry\":") && parse_entry(line).seq >= seq
}
