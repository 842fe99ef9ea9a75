//! A version registered natively with its files (`multipart/form-data`): the registry keeps them,
//! computes their digest, lists and serves them; a refused or broken-off upload keeps nothing.

use app::domain::{Role, percent_encoded};
use modelgate_tests::{Backend, TestApp, digest, expect_error, json, on_both_backends};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_backends!(
    a_version_registered_with_its_files_keeps_them_under_the_servers_digest,
    an_upload_refused_or_broken_off_keeps_nothing
);

fn files() -> Vec<(&'static str, Vec<u8>)> {
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    vec![
        ("model.onnx", weights),
        ("config/thresholds.json", br#"{"fraud": 0.7}"#.to_vec()),
        ("empty.txt", Vec::new()),
        ("données/графики.txt", "unicode\n".as_bytes().to_vec()),
    ]
}

fn form(fields: Value, files: &[(&str, Vec<u8>)]) -> Form {
    let fields = Part::text(fields.to_string()).mime_str("application/json").unwrap();
    files.iter().fold(Form::new().part("version", fields), |form, (name, data)| {
        form.part("file", Part::bytes(data.clone()).file_name(name.to_string()))
    })
}

/// The documented digest: sha256 over `<sha256 hex>  <path>\n` per file, in byte order of paths.
fn tree_digest(files: &[(&str, Vec<u8>)]) -> String {
    let mut lines: Vec<(&str, String)> =
        files.iter().map(|(name, data)| (*name, hex::encode(Sha256::digest(data)))).collect();
    lines.sort();
    let listing: String = lines.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect();
    format!("sha256:{}", hex::encode(Sha256::digest(listing)))
}

async fn register(app: &TestApp, client: &reqwest::Client, form: Form) -> reqwest::Response {
    client.post(app.url("/api/v1/models/fraud%20detector/versions")).multipart(form).send().await.unwrap()
}

async fn a_version_registered_with_its_files_keeps_them_under_the_servers_digest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    json(app.post("/api/v1/models", &json!({ "name": "fraud detector" })).await, 201).await;
    let files = files();
    let fields = json!({ "framework": "onnx", "description": "uploaded", "artifact_digest": tree_digest(&files) });
    let version = json(register(&app, &app.client, form(fields, &files)).await, 201).await;
    assert_eq!(version["artifact_digest"], tree_digest(&files), "{version}");
    let root = version["artifact_root"].as_str().unwrap();
    assert!(root.starts_with("registry/"), "{version}");
    assert_eq!(version["artifact_uri"], format!("mlflow-artifacts:/{root}"));

    let listed = json(app.get("/api/v1/models/fraud%20detector/versions/1/files").await, 200).await;
    assert_eq!(listed["digest_computed_by_server"], true);
    let mut expected: Vec<Value> = files
        .iter()
        .map(|(name, data)| json!({ "path": name, "size": data.len(), "sha256": hex::encode(Sha256::digest(data)) }))
        .collect();
    expected.sort_by_key(|f| f["path"].as_str().unwrap().to_string());
    assert_eq!(listed["files"], Value::Array(expected), "{listed}");

    // Each file downloads byte-identical, its sha256 as the ETag; only for callers signed in.
    for (name, data) in &files {
        let path: Vec<String> = name.split('/').map(percent_encoded).collect();
        let url = app.url(&format!("/api/v1/models/fraud%20detector/versions/1/files/{}", path.join("/")));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["etag"], format!("\"sha256:{}\"", hex::encode(Sha256::digest(data))).as_str());
        assert_eq!(response.bytes().await.unwrap().as_ref(), data.as_slice(), "{name}");
        assert_eq!(app.anonymous.get(&url).send().await.unwrap().status(), 401);
    }
    let missing = app.get("/api/v1/models/fraud%20detector/versions/1/files/nope.bin").await;
    expect_error(missing, 404, None).await;

    // Deployable at once; the files never change through the artifact proxy.
    json(app.post("/api/v1/models/fraud%20detector/environments/staging/deploy", &json!({"version": 1})).await, 201)
        .await;
    let put = app.client.put(app.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{root}/model.onnx"))).body("x");
    let refused: Value = put.send().await.unwrap().json().await.unwrap();
    assert_eq!(refused["error_code"], "INVALID_PARAMETER_VALUE", "{refused}");
    assert_eq!(app.stored_objects(), files.len());
    let page = json(app.get("/api/v1/audit?action=version.register").await, 200).await;
    assert_eq!(page["entries"][0]["after"]["artifact_digest"], tree_digest(&files), "{page}");
    app.stop().await;
}

async fn an_upload_refused_or_broken_off_keeps_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    json(app.post("/api/v1/models", &json!({ "name": "fraud detector" })).await, 201).await;
    let files = files();
    let refusals = [
        (json!({ "artifact_digest": digest(7) }), files.clone(), "artifact_digest"),
        (json!({ "artifact_uri": "s3://elsewhere" }), files.clone(), "artifact_uri"),
        (json!({}), vec![("../escape.bin", b"x".to_vec())], "file"),
        (json!({}), vec![("/etc/passwd", b"x".to_vec())], "file"),
        (json!({}), vec![("a.bin", b"1".to_vec()), ("a.bin", b"2".to_vec())], "file"),
        (json!({}), Vec::new(), "file"),
        (json!({ "framework": 7 }), files.clone(), "framework"),
    ];
    for (fields, files, field) in refusals {
        let body =
            expect_error(register(&app, &app.client, form(fields.clone(), &files)).await, 422, Some(field)).await;
        assert!(body["error"]["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{fields}: {body}");
    }
    let viewer = app.client_as("looker", &[Role::Viewer]).await;
    expect_error(register(&app, &viewer, form(json!({}), &files)).await, 403, None).await;

    // Refused while the client still has megabytes to send: the refusal is read, not a broken
    // connection (the server drains what is left, within bounds).
    let large = vec![("weights.bin", vec![3u8; 24 << 20])];
    expect_error(register(&app, &viewer, form(json!({}), &large)).await, 403, None).await;
    let early = form(json!({ "artifact_uri": "s3://elsewhere" }), &large);
    expect_error(register(&app, &app.client, early).await, 422, Some("artifact_uri")).await;

    // A body that breaks off in the middle of a file.
    let boundary = "modelgate-test-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n{{}}\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"model.onnx\"\r\n\r\n"
    );
    let mut sent = head.into_bytes();
    sent.extend(std::iter::repeat_n(7u8, 200_000));
    let request = format!(
        "POST /api/v1/models/fraud%20detector/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        app.token,
        sent.len() + 1_000_000
    );
    let mut socket = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, &sent).await.unwrap();
    drop(socket);

    let started = std::time::Instant::now();
    while app.stored_objects() > 0 && started.elapsed().as_secs() < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.stored_objects(), 0, "no bytes of any refused upload are kept");
    let model = json(app.get("/api/v1/models/fraud%20detector").await, 200).await;
    assert_eq!(model["version_count"], 0, "{model}");
    app.stop().await;
}
