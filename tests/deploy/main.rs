//! Deployment tests: the OCI image under runc, the Kubernetes recipe against the schemas, a
//! restore from backup whose audit chain verifies, a binary rolled back onto a newer schema.
mod image;
mod kubernetes;
mod restore;
mod schema;

use reqwest::multipart::{Form, Part};
use serde_json::json;

/// A model's `version`-th version registered with one file through the API (the model is created
/// with the first); returns the file's bytes, after reading them back byte for byte.
pub async fn register_version_with_file(base: &str, token: &str, model: &str, version: u32) -> Vec<u8> {
    let client = modelgate_tests::bearer_client(token);
    if version == 1 {
        let created =
            client.post(format!("{base}/api/v1/models")).json(&json!({ "name": model })).send().await.unwrap();
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    }
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ version as u8).collect();
    let form = Form::new()
        .part("version", Part::text(json!({ "framework": "onnx" }).to_string()).mime_str("application/json").unwrap())
        .part("file", Part::bytes(weights.clone()).file_name("model.onnx"));
    let registered =
        client.post(format!("{base}/api/v1/models/{model}/versions")).multipart(form).send().await.unwrap();
    assert_eq!(registered.status(), 201, "{}", registered.text().await.unwrap());
    assert_eq!(file_of(base, token, model, version).await.as_deref(), Some(weights.as_slice()));
    weights
}

/// The bytes of a version's `model.onnx`, if the registry has them.
pub async fn file_of(base: &str, token: &str, model: &str, version: u32) -> Option<Vec<u8>> {
    let url = format!("{base}/api/v1/models/{model}/versions/{version}/files/model.onnx");
    let response = modelgate_tests::bearer_client(token).get(url).send().await.unwrap();
    (response.status() == 200).then_some(response.bytes().await.unwrap().to_vec())
}
