//! The OCI image under `runc`: non-root, read-only root, data on a volume, the signing key from a
//! mounted secret; the console answers and a version registers, on SQLite and on PostgreSQL with
//! S3; replicas started before their migrations wait for the migration job; the agent sidecar
//! serves a deployed version; packing twice gives the same digest.

use std::path::Path;
use std::time::Duration;

use modelgate_tests::container::{Container, Unpacked, wait_ready};
use modelgate_tests::{Backend, PASSWORD, S3Server, TEST_AUDIT_KEY, TestDb, bearer_client, free_port};
use serde_json::{Value, json};

use crate::register_version_with_file;

/// Where the platform mounts the audit signing key (a Kubernetes secret in `deploy/kubernetes`).
const KEY_INSIDE: &str = "/etc/modelgate/secrets/audit-signing.key";

/// The public key of the tests' audit key, base64 as `GET /api/v1/audit/public-key` gives it.
fn test_public_key() -> String {
    use base64::Engine;
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(TEST_AUDIT_KEY).unwrap().try_into().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_on_sqlite_from_its_volume() {
    let image = Unpacked::unpack();
    assert_eq!(image.process()["user"]["uid"], 10001, "a non-root user: {}", image.process());
    for package in ["libc6", "libgcc-s1", "ca-certificates"] {
        let status = image.read(&format!("/var/lib/dpkg/status.d/{package}"));
        assert!(
            status.contains(&format!("Package: {package}\n")) && status.contains("\nVersion: "),
            "{package}: {status}"
        );
    }
    let data = image.volume("data");
    let secrets = image.secret("audit-signing.key", TEST_AUDIT_KEY);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = [("MODELGATE_ADDR", addr.as_str()), ("MODELGATE_AUDIT_KEY_FILE", KEY_INSIDE)];
    let mounts = [(data.as_path(), "/var/lib/modelgate", false), (secrets.as_path(), KEY_INSIDE, true)];
    let server = image.start(&[], &env, &mounts);
    let base = format!("http://{addr}");
    wait_ready(&format!("{base}/readyz"), Duration::from_secs(30), &server).await;
    confined(&server);
    console_answers(&base).await;

    let token = server.token(&["operator"]);
    register_version_with_file(&base, &token, "churn", 1).await;
    let key = reqwest::get(format!("{base}/api/v1/audit/public-key")).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(key["current"]["public_key"], test_public_key(), "signing with the mounted key: {key}");
    assert!(data.join("modelgate.db").exists(), "the database lives on the volume");
    assert!(data.join("artifacts").read_dir().unwrap().next().is_some(), "so do the artifacts");
    assert!(!data.join("audit-signing.key").exists(), "no key generated beside the data");

    // Stopped as Kubernetes stops a pod: SIGTERM, then a clean exit.
    server.signal("TERM");
    server.wait_stopped(Duration::from_secs(15)).await;
    assert!(server.output().contains("shutting down"), "{}", server.output());
}

/// The recipe's shape: PostgreSQL, artifacts in an S3 bucket, a small state volume for the
/// witness, replicas that wait for the migration job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_the_image_on_postgres_and_s3_wait_for_the_migration_job() {
    let db = TestDb::create(Backend::Postgres).await;
    let s3 = S3Server::start("models").await;
    let image = Unpacked::unpack();
    let state = image.volume("state");
    let secrets = image.secret("audit-signing.key", TEST_AUDIT_KEY);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let settings = [
        ("MODELGATE_ADDR", addr.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("MODELGATE_ARTIFACT_STORE", "s3://models/registry"),
        ("MODELGATE_AUDIT_KEY_FILE", KEY_INSIDE),
        ("MODELGATE_MIGRATE", "wait"),
    ];
    let env = [&settings[..], &s3.credentials()].concat();
    let mounts = [(state.as_path(), "/var/lib/modelgate", false), (secrets.as_path(), KEY_INSIDE, true)];
    let replica = image.start(&[], &env, &mounts);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = format!("http://{addr}");
    // Alive, not ready, and saying why.
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200, "{}", replica.output());
    let readyz = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    assert!(readyz.text().await.unwrap().starts_with("waiting for migrations [1, 2, 3"));
    let models = reqwest::get(format!("{base}/api/v1/models")).await.unwrap();
    assert_eq!(models.status(), 503, "nothing served before the migrations");

    // The migration job: the same image, `migrate`, run to completion.
    let job = image.start(&["migrate"], &[("DATABASE_URL", db.url.as_str())], &[]);
    job.wait_stopped(Duration::from_secs(60)).await;
    assert!(job.output().contains("migrations applied"), "{}", job.output());
    wait_ready(&format!("{base}/readyz"), Duration::from_secs(30), &replica).await;
    confined(&replica);
    console_answers(&base).await;
    let token = replica.token(&["operator"]);
    register_version_with_file(&base, &token, "churn", 1).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM versions").fetch_one(&mut conn).await.unwrap();
    assert_eq!(versions, 1, "stored in PostgreSQL");
    assert_eq!(s3.objects("models", "registry").len(), 1, "the file is in the bucket");
    let witness = state.join("audit-checkpoint.json");
    assert!(wait_for_file(&witness).await, "the replica keeps its witness on the state volume");
}

/// The Kubernetes example's agent sidecar, from the same image: it follows the version deployed
/// to production, puts its files in the shared volume and reports it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_of_the_image_serves_the_deployed_version_into_a_shared_volume() {
    let image = Unpacked::unpack();
    let (data, models) = (image.volume("data"), image.volume("models"));
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let server =
        image.start(&[], &[("MODELGATE_ADDR", addr.as_str())], &[(data.as_path(), "/var/lib/modelgate", false)]);
    wait_ready(&format!("{base}/readyz"), Duration::from_secs(30), &server).await;
    let operator = server.token(&["operator"]);
    let weights = register_version_with_file(&base, &operator, "churn", 1).await;
    let deploy = bearer_client(&operator)
        .post(format!("{base}/api/v1/models/churn/environments/production/deploy"))
        .json(&json!({ "version": 1, "reason": "first release" }))
        .send()
        .await
        .unwrap();
    assert_eq!(deploy.status(), 201, "{}", deploy.text().await.unwrap());
    server.exec(&["modelgate", "user", "add", "fleet", "--role", "agent"], &format!("{PASSWORD}\n"));
    let agent_token = server.exec(
        &[
            "modelgate",
            "token",
            "create",
            "--user",
            "fleet",
            "--name",
            "pod",
            "--role",
            "agent",
            "--environment",
            "production",
        ],
        "",
    );
    let key: Value = reqwest::get(format!("{base}/api/v1/fleet/public-key")).await.unwrap().json().await.unwrap();

    // The sidecar's settings in deploy/kubernetes/model-server-with-agent.yaml.
    let env = [
        ("MODELGATE_SERVER", base.as_str()),
        ("MODELGATE_TOKEN", agent_token.trim()),
        ("MODELGATE_AGENT_MODEL", "churn"),
        ("MODELGATE_AGENT_ENVIRONMENT", "production"),
        ("MODELGATE_AGENT_GROUP", "eu-west-1"),
        ("MODELGATE_AGENT_INSTANCE", "churn-7d9f-abcde"),
        ("MODELGATE_AGENT_PUBLIC_KEY", key["public_key"].as_str().unwrap()),
        ("MODELGATE_AGENT_DIR", "/models"),
    ];
    let agent = image.start(&["agent"], &env, &[(models.as_path(), "/models", false)]);
    let fleet_url = format!("{base}/api/v1/models/churn/environments/production/fleet");
    let started = std::time::Instant::now();
    loop {
        let fleet: Value = bearer_client(&operator).get(&fleet_url).send().await.unwrap().json().await.unwrap();
        let ready = fleet["agents"].as_array().is_some_and(|agents| {
            agents.iter().any(|a| a["instance"] == "churn-7d9f-abcde" && a["state"] == "ready" && a["version"] == 1)
        });
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "agent not ready: {fleet}\n{}", agent.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(std::fs::read(models.join("current/model.onnx")).unwrap(), weights, "the served files, in the volume");
    confined(&agent);
}

/// Whether `file` appears within five seconds.
async fn wait_for_file(file: &Path) -> bool {
    for _ in 0..50 {
        if file.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Its process runs as the image's user on a read-only root.
fn confined(container: &Container) {
    let pid = container.state()["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|id| id == "10001"), "{uid}");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f[4] == "/").unwrap();
    assert!(root[5].split(',').any(|o| o == "ro"), "root mounted read-only: {root:?}");
}

/// The console's page and the files it loads come from the image.
async fn console_answers(base: &str) {
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().text().await.unwrap(), "ok");
    let page = reqwest::get(format!("{base}/login")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let stylesheet = html.split('"').find(|s| s.starts_with("/pkg/") && s.ends_with(".css")).expect("a stylesheet");
    let css = reqwest::get(format!("{base}{stylesheet}")).await.unwrap();
    assert_eq!(css.status(), 200, "{stylesheet}");
    assert!(css.text().await.unwrap().len() > 1000);
}

/// The same commit and binary pack to the same image, byte for byte (every time in it is the
/// commit's), so anyone can check an image against the build that claims it.
#[test]
fn the_image_packs_to_the_same_digest_every_time() {
    let pack = || {
        let layout = std::env::temp_dir().join(format!("modelgate-layout-{}", uuid::Uuid::new_v4()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/image.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg("--no-build")
            .env("MODELGATE_IMAGE_LAYOUT", &layout)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        std::fs::remove_dir_all(&layout).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap().to_string()
    };
    let first = pack();
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(pack(), first);
}
