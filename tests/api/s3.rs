//! The S3 artifact store against a real S3-protocol server — `s3s-fs` from crates.io, installed by
//! `scripts/bootstrap.sh --tests` — behind a `modelgate serve` process: the MLflow client's files
//! go up and come back byte-identical, MLflow's quickstart registers a model whose files live in
//! the bucket, and serving code loads it from there.

use modelgate_tests::{Backend, S3Server, ServerProcess, TestDb, bearer_client, migrate_with_user};
use serde_json::{Value, json};

use crate::mlflow::client_script_at;

#[tokio::test(flavor = "multi_thread")]
async fn the_artifact_store_keeps_mlflow_files_and_registered_models_in_an_s3_bucket() {
    let s3 = S3Server::start("models").await;
    let db = TestDb::create(Backend::Sqlite).await;
    let token = migrate_with_user(&db.url, &["operator"]);
    let env = [&[("MODELGATE_ARTIFACT_STORE", "s3://models/modelgate")][..], &s3.credentials()].concat();
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
