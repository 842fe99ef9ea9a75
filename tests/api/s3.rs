//! The S3 artifact store against a real S3-protocol server — `s3s-fs` from crates.io, installed by
//! `scripts/bootstrap.sh --tests` — behind a `modelgate serve` process: the MLflow client's files
//! go up and come back byte-identical, MLflow's quickstart registers a model whose files live in
//! the bucket, and serving code loads it from there.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use modelgate_tests::{Backend, PASSWORD, ServerProcess, TestDb, bearer_client, free_port, run_modelgate};
use serde_json::{Value, json};

use crate::mlflow::client_script_at;

/// `s3s-fs` serving a directory, whose subdirectories are its buckets.
struct S3Server {
    endpoint: String,
    root: PathBuf,
    child: Child,
}

const ACCESS_KEY: &str = "modelgate-test";
const SECRET_KEY: &str = "modelgate-test-secret";

impl S3Server {
    async fn start(bucket: &str) -> Self {
        let binary = PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo/bin/s3s-fs");
        assert!(binary.exists(), "{} is missing: run scripts/bootstrap.sh --tests", binary.display());
        let root = std::env::temp_dir().join(format!("modelgate-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed().as_secs() < 20, "s3s-fs did not listen");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { endpoint: format!("http://127.0.0.1:{port}"), root, child }
    }

    /// Every object under `prefix` of `bucket`, as files on s3s-fs's disk.
    fn objects(&self, bucket: &str, prefix: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join(bucket).join(prefix), &mut out);
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_artifact_store_keeps_mlflow_files_and_registered_models_in_an_s3_bucket() {
    let s3 = S3Server::start("models").await;
    let db = TestDb::create(Backend::Sqlite).await;
    run_modelgate(&["migrate"], &db.url, "");
    run_modelgate(&["user", "add", "ci", "--role", "operator"], &db.url, &format!("{PASSWORD}\n"));
    let token = run_modelgate(&["token", "create", "--user", "ci", "--name", "ci", "--role", "operator"], &db.url, "");
    let token = token.trim().to_string();
    let env = [
        ("MODELGATE_ARTIFACT_STORE", "s3://models/modelgate"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let server = ServerProcess::start_with_env(&db.url, &[], &env).await;
    let credentials = [("MLFLOW_TRACKING_TOKEN", token.as_str())];

    // Files of every size through the artifact proxy, byte-identical (the script compares), each
    // one object in the bucket.
    let out = client_script_at(&server.base, "artifacts.py", &["s3-churn"], &credentials).await;
    let uploaded = out["sha256"].as_object().unwrap().len();
    assert_eq!(s3.objects("models", "modelgate").len(), uploaded, "{out}");

    // MLflow's quickstart: the logged model's files go to the bucket, the version gets the
    // server's digest over them, and serving code loads the deployed version from there.
    let trained = client_script_at(&server.base, "models.py", &["train", "iris-s3"], &credentials).await;
    let client = bearer_client(&token);
    let read = async |path: &str| -> Value {
        client.get(format!("{}{path}", server.base)).send().await.unwrap().json().await.unwrap()
    };
    let version = read("/api/v1/models/iris-s3/versions/1").await;
    assert_eq!(version["artifact_digest"], trained["first"]["digest"], "{version}");
    let deploy = client
        .post(format!("{}/api/v1/models/iris-s3/environments/production/deploy", server.base))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(deploy.status(), 201);
    let predicted =
        client_script_at(&server.base, "models.py", &["predict", "iris-s3", "production"], &credentials).await;
    assert_eq!(predicted["predictions"], json!([0, 0, 0]));

    // The version's files through the native API: each byte-identical to its object in the bucket.
    let files = read("/api/v1/models/iris-s3/versions/1/files").await;
    assert_eq!(files["digest_computed_by_server"], true, "{files}");
    let listed = files["files"].as_array().unwrap();
    assert_eq!(listed.len() as i64, trained["first"]["files"].as_i64().unwrap(), "{files}");
    let mlmodel = listed.iter().find(|f| f["path"] == "MLmodel").expect("the MLmodel file");
    let response =
        client.get(format!("{}/api/v1/models/iris-s3/versions/1/files/MLmodel", server.base)).send().await.unwrap();
    assert_eq!(response.headers()["etag"], format!("\"sha256:{}\"", mlmodel["sha256"].as_str().unwrap()).as_str());
    let body = response.bytes().await.unwrap();
    let in_bucket = s3.objects("models", "modelgate").into_iter().any(|p| std::fs::read(p).unwrap() == body);
    assert!(in_bucket, "the MLmodel bytes are an object in the bucket");
}
