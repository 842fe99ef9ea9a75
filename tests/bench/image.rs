//! The OCI image as a platform runs it (see `scripts/bench-image.sh`): its size, the time from
//! `runc run` to ready and from SIGTERM to exit, and one replica's memory and throughput, and the
//! database's growth per version and per metric point, on PostgreSQL with the Kubernetes recipe's
//! settings (key from a mounted secret, read-only root, replicas that wait for the migration job).
//!
//! Usage: `imagebench [--starts N] [--versions N] [--points N] [--seconds S] [--clients C]`

mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::{print_table, run};
use modelgate_tests::container::{Unpacked, wait_ready};
use modelgate_tests::{Backend, TEST_AUDIT_KEY, TestDb, bearer_client, free_port, number_arg};
use serde_json::json;

const KEY_INSIDE: &str = "/etc/modelgate/keys/audit-signing.key";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

fn millis(mut durations: Vec<Duration>) -> String {
    durations.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!("p50 {:.0} ms, max {:.0} ms", ms(durations[durations.len() / 2]), ms(durations[durations.len() - 1]))
}

/// The database's size on disk, as PostgreSQL counts it.
async fn database_bytes(url: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&mut conn).await.unwrap()
}

#[tokio::main]
async fn main() {
    let starts = number_arg("--starts", 10);
    let versions = number_arg("--versions", 200);
    let seconds = number_arg("--seconds", 10) as u64;
    let clients = number_arg("--clients", 8);
    let points = number_arg("--points", 1_000_000);

    let blobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/image/blobs/sha256");
    let compressed: u64 = std::fs::read_dir(blobs).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let image = Unpacked::unpack();
    println!("image: {:.1} MiB to pull, {:.1} MiB unpacked", mib(compressed), mib(image.size()));

    let db = TestDb::create(Backend::Postgres).await;
    let state = image.volume("state");
    let key = image.secret("audit-signing.key", TEST_AUDIT_KEY);
    let mounts = [(state.as_path(), "/var/lib/modelgate", false), (key.as_path(), KEY_INSIDE, true)];
    let migration = image.start(&["migrate"], &[("DATABASE_URL", db.url.as_str())], &[]);
    migration.wait_stopped(Duration::from_secs(60)).await;
    let replica = |addr: &str| {
        let env = [
            ("MODELGATE_ADDR", addr),
            ("DATABASE_URL", db.url.as_str()),
            ("MODELGATE_AUDIT_KEY_FILE", KEY_INSIDE),
            ("MODELGATE_MIGRATE", "wait"),
            ("MODELGATE_LOG", "warn"),
        ];
        image.start(&[], &env, &mounts)
    };

    let (mut ready, mut stopped) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        let addr = format!("127.0.0.1:{}", free_port());
        let started = Instant::now();
        let container = replica(&addr);
        wait_ready(&format!("http://{addr}/readyz"), Duration::from_secs(30), &container).await;
        ready.push(started.elapsed());
        let stopping = Instant::now();
        container.signal("TERM");
        container.wait_stopped(Duration::from_secs(30)).await;
        stopped.push(stopping.elapsed());
    }
    println!("runc run → /readyz answers 200 ({starts} starts): {}", millis(ready));
    println!("SIGTERM → exited: {}", millis(stopped));

    let addr = format!("127.0.0.1:{}", free_port());
    let container = replica(&addr);
    let base = format!("http://{addr}");
    wait_ready(&format!("{base}/readyz"), Duration::from_secs(30), &container).await;
    let client = bearer_client(&container.token(&["operator"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = container.memory_kib();
    let created = client.post(format!("{base}/api/v1/models")).json(&json!({ "name": "churn" })).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let before_versions = database_bytes(&db.url).await;
    let register = {
        let (client, base) = (client.clone(), base.clone());
        run("version registration", 1, 0, Some(versions), move |i| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let body = json!({ "artifact_uri": format!("s3://models/churn/{i}"), "artifact_digest": format!("sha256:{:064x}", i) });
                let response = client.post(format!("{base}/api/v1/models/churn/versions")).json(&body).send().await;
                response.is_ok_and(|r| r.status() == 201)
            }
        })
        .await
    };
    let before_points = database_bytes(&db.url).await;
    let batch: axum::body::Bytes = serde_json::to_vec(&json!({ "points": (0..1_000)
        .map(|i| json!({ "key": if i % 2 == 0 { "latency_ms" } else { "error_rate" }, "value": 100.0 + f64::from(i).sin() }))
        .collect::<Vec<_>>() }))
    .unwrap()
    .into();
    let ingest = {
        let (client, base) = (client.clone(), base.clone());
        run("metric points, 1,000 a batch", 4, 0, Some(points / 1_000), move |i| {
            let (client, base, batch) = (client.clone(), base.clone(), batch.clone());
            async move {
                let url = format!("{base}/api/v1/models/churn/versions/{}/metrics", i % versions + 1);
                let request = client.post(url).header("content-type", "application/json").body(batch);
                request.send().await.is_ok_and(|r| r.status() == 201)
            }
        })
        .await
    };
    let after_points = database_bytes(&db.url).await;
    let read = {
        let (client, base) = (client.clone(), base.clone());
        run("version read", clients, seconds, None, move |i| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let url = format!("{base}/api/v1/models/churn/versions/{}", i % versions + 1);
                client.get(url).send().await.is_ok_and(|r| r.status() == 200)
            }
        })
        .await
    };
    let list = run("version list, page of 50", clients, seconds, None, move |_| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client.get(format!("{base}/api/v1/models/churn/versions?limit=50")).send().await;
            response.is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    let (now, peak) = container.memory_kib();
    let points_per_second = ingest.micros.len() as f64 * 1_000.0 / ingest.elapsed.as_secs_f64();
    print_table(&mut [register, ingest, read, list]);
    println!("metric points through the replica: {points_per_second:.0} /s");
    println!(
        "database growth: {:.0} bytes a version (with its audit entry), {:.1} bytes a metric point",
        (before_points - before_versions) as f64 / versions as f64,
        (after_points - before_points) as f64 / points as f64
    );
    println!(
        "resident memory of the replica: {:.1} MiB idle, {:.1} MiB after the load, {:.1} MiB at its peak",
        idle as f64 / 1024.0,
        now as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
