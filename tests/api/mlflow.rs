//! The MLflow-compatible API: the real `mlflow` Python client (pinned, in the venv that
//! scripts/bootstrap.sh makes) runs a training pipeline against the server, and what it wrote is
//! then read back through Modelgate's own API and console; bad input gets MLflow's error codes.

use std::path::PathBuf;

use app::domain::Role;
use modelgate_tests::{Backend, PASSWORD, TestApp, bearer_client, json, on_both_backends};
use reqwest::{Client, Method};
use serde_json::{Value, json};

on_both_backends!(
    the_mlflow_client_logs_a_run_and_registers_it_into_the_one_registry,
    mlflow_requests_get_mlflow_errors_and_aliases_follow_environments,
    every_mlflow_endpoint_checks_the_callers_role,
    concurrent_alias_sets_each_record_the_version_they_replaced,
    an_alias_set_on_a_stale_guess_reads_the_alias_again,
    non_finite_metric_values_stay_in_the_run_and_out_of_the_version_charts,
    run_artifacts_go_up_and_come_back_byte_identical_with_server_computed_digests,
    artifact_requests_that_escape_or_break_off_store_nothing
);

/// The Python of the venv with the pinned `mlflow-skinny` client.
fn python() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/mlflow/bin/python");
    assert!(path.exists(), "{} is missing: run scripts/bootstrap.sh", path.display());
    path
}

/// Runs one phase of tests/mlflow/pipeline.py with `credentials` as environment variables;
/// returns the JSON line it prints.
async fn pipeline(app: &TestApp, phase: &str, model: &str, credentials: &[(&str, &str)]) -> Value {
    client_script(app, "pipeline.py", &[phase, model, "production"], credentials).await
}

/// Runs the MLflow client script tests/mlflow/`script` against `app` with `args` and
/// `credentials` as environment variables; returns the JSON line it prints.
pub(crate) async fn client_script(app: &TestApp, script: &str, args: &[&str], credentials: &[(&str, &str)]) -> Value {
    client_script_at(&app.base, script, args, credentials).await
}

/// [`client_script`] against the server at `base`.
pub(crate) async fn client_script_at(base: &str, script: &str, args: &[&str], credentials: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mlflow").join(script);
    let mut command = std::process::Command::new(python());
    command
        .arg(path)
        .args(args)
        .env("MLFLOW_TRACKING_URI", base)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("GIT_PYTHON_REFRESH", "quiet")
        // No telemetry: nothing leaves the machine, and its session bookkeeping once failed a
        // client call (a KeyError on `_MLFLOW_TELEMETRY_SESSION_ID`).
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .envs(credentials.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the pipeline prints JSON")
}

async fn the_mlflow_client_logs_a_run_and_registers_it_into_the_one_registry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = modelgate_tests::create_user(&app.store, "pipeline", &[Role::Operator]).await;

    let trained = pipeline(&app, "train", "fraud", &[("MLFLOW_TRACKING_TOKEN", &token)]).await;
    let run_id = trained["run_id"].as_str().unwrap().to_string();
    assert_eq!(run_id.len(), 32, "MLflow-shaped run id: {run_id}");

    // The native API shows the same model and version, its lineage pointing at the run.
    let version = json(app.get("/api/v1/models/fraud/versions/1").await, 200).await;
    assert_eq!(version["lineage"]["run_id"], run_id.as_str());
    assert_eq!(version["artifact_uri"], format!("runs:/{run_id}/model"));
    assert_eq!(version["artifact_digest"], format!("sha256:{}", "ab".repeat(32)));
    assert_eq!(version["description"], "from nightly");
    assert_eq!(version["created_by"], "pipeline (token tests)");
    assert_eq!(
        version["parameters"],
        json!({"learning_rate": "0.05", "max_depth": "8", "optimizer": "adam", "epochs": "1000"})
    );
    // The run's metrics are the version's evaluation series.
    let series = json(app.get("/api/v1/models/fraud/versions/1/metrics").await, 200).await;
    let count =
        |key: &str| series.as_array().unwrap().iter().find(|s| s["key"] == key).map(|s| s["count"].as_i64().unwrap());
    assert_eq!(
        (count("loss"), count("accuracy"), count("auc"), count("f1")),
        (Some(1000), Some(1000), Some(2), Some(1))
    );
    let loss = series.as_array().unwrap().iter().find(|s| s["key"] == "loss").unwrap();
    assert_eq!(loss["source"], "eval");
    assert_eq!(loss["last"]["step"], 999);
    assert_eq!(loss["last"]["value"], 0.001);
    assert_eq!(loss["first"]["timestamp"], 1_700_000_000_000_i64);

    // The version page shows the run and its charts.
    let (cookie, _) = app.sign_in("pipeline", PASSWORD).await;
    let page =
        app.session_client(&cookie.expect("signed in")).get(app.url("/models/fraud/versions/1")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for expected in [run_id.as_str(), "loss", "accuracy", "learning_rate"] {
        assert!(html.contains(expected), "the version page shows {expected}");
    }

    // Deployed natively, the version is what the guarded alias reads; the second phase signs in
    // with a username and password.
    json(app.post("/api/v1/models/fraud/environments/production/deploy", &json!({"version": 1})).await, 201).await;
    let released = pipeline(
        &app,
        "release",
        "fraud",
        &[("MLFLOW_TRACKING_USERNAME", "pipeline"), ("MLFLOW_TRACKING_PASSWORD", PASSWORD)],
    )
    .await;
    assert_eq!(released, json!({"run_id": run_id, "versions": 3}));
    let live = json(app.get("/api/v1/models/fraud/environments/production").await, 200).await;
    assert_eq!(live["version"], 1, "the refused alias did not move production: {live}");
    let bare = json(app.get("/api/v1/models/fraud/versions/2").await, 200).await;
    assert_eq!(bare["artifact_digest"], Value::Null, "registered without a digest");
    let refused = app.post("/api/v1/models/fraud/environments/staging/deploy", &json!({"version": 2})).await;
    assert_eq!(refused.status(), 409, "a version without a digest cannot be deployed");
    // Attaching the digest (a version tag through MLflow) makes it deployable; it is write-once.
    let tag =
        |digest: String| json!({"name": "fraud", "version": "2", "key": "modelgate.artifact_digest", "value": digest});
    let (status, _) =
        call(&app.client, &app, Method::POST, "model-versions/set-tag", tag(format!("sha256:{}", "12".repeat(32))))
            .await;
    assert_eq!(status, 200);
    json(app.post("/api/v1/models/fraud/environments/staging/deploy", &json!({"version": 2})).await, 201).await;
    let again =
        call(&app.client, &app, Method::POST, "model-versions/set-tag", tag(format!("sha256:{}", "34".repeat(32))))
            .await;
    assert!(mlflow_error(again, "INVALID_PARAMETER_VALUE", 400).contains("never changed"));

    // Every write through MLflow is in the audit log, by the pipeline's user.
    for action in [
        "experiment.create",
        "run.create",
        "run.log",
        "run.update",
        "model.create",
        "version.register",
        "version.update",
        "alias.set",
        "alias.delete",
    ] {
        let page = json(app.get(&format!("/api/v1/audit?action={action}")).await, 200).await;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.iter().any(|e| e["actor_user"] == "pipeline"), "{action} by the pipeline is audited: {page}");
    }
    app.stop().await;
}

/// An MLflow call with a JSON body (or query parameters for GET) as `client`.
pub(crate) async fn call(client: &Client, app: &TestApp, method: Method, endpoint: &str, body: Value) -> (u16, Value) {
    let request = modelgate_tests::mlflow_request(client, &app.base, method, endpoint, &body);
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{endpoint}: not JSON: {text}")))
}

/// Asserts MLflow's error shape, code and status; returns the message.
pub(crate) fn mlflow_error((status, body): (u16, Value), code: &str, expected_status: u16) -> String {
    assert_eq!((status, body["error_code"].as_str()), (expected_status, Some(code)), "{body}");
    body["message"].as_str().unwrap().to_string()
}

async fn mlflow_requests_get_mlflow_errors_and_aliases_follow_environments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let post = Method::POST;

    // Who may do what: the same roles as the native API.
    let anonymous = bearer_client("");
    mlflow_error(
        call(&anonymous, &app, post.clone(), "experiments/create", json!({"name": "x"})).await,
        "UNAUTHENTICATED",
        401,
    );
    let viewer = app.client_as("viewer", &[Role::Viewer]).await;
    mlflow_error(
        call(&viewer, &app, post.clone(), "experiments/create", json!({"name": "x"})).await,
        "PERMISSION_DENIED",
        403,
    );
    let wrong = Client::new()
        .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
        .basic_auth("tester", Some("nope"));
    assert_eq!(wrong.send().await.unwrap().status(), 401);

    // Bad input names what is wrong, with MLflow's codes.
    let message = mlflow_error(
        call(c, &app, post.clone(), "experiments/create", json!({})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    assert!(message.contains("name"), "{message}");
    mlflow_error(
        call(c, &app, Method::GET, "experiments/get", json!({"experiment_id": "abc"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    mlflow_error(
        call(c, &app, Method::GET, "experiments/get", json!({"experiment_id": "42"})).await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    mlflow_error(
        call(c, &app, Method::GET, "runs/get", json!({"run_id": "f".repeat(32)})).await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    mlflow_error(call(c, &app, post.clone(), "traces/search", json!({})).await, "ENDPOINT_NOT_FOUND", 404);
    for (filter, names) in [
        ("metrics.accuracy > 'high'", "a number"),
        ("params.alpha > 1", "a quoted value"),
        ("datasets.name = 'x'", "not searchable"),
        ("attributes.colour = 'red'", "unknown run attribute"),
        ("metrics.accuracy >", "needs a quoted value, a number or a list"),
    ] {
        let search = json!({"experiment_ids": ["0"], "filter": filter});
        let message =
            mlflow_error(call(c, &app, post.clone(), "runs/search", search).await, "INVALID_PARAMETER_VALUE", 400);
        assert!(message.starts_with("filter: ") && message.contains(names), "{filter}: {message}");
    }
    let search = json!({"experiment_ids": ["0"], "order_by": ["metrics.accuracy sideways"]});
    let message =
        mlflow_error(call(c, &app, post.clone(), "runs/search", search).await, "INVALID_PARAMETER_VALUE", 400);
    assert!(message.starts_with("order_by: "), "{message}");
    let not_json = c.post(app.url("/api/2.0/mlflow/runs/create")).header("content-type", "application/json").body("{");
    let response = not_json.send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error_code"], "INVALID_PARAMETER_VALUE");

    // A run on the default experiment; batch limits, write-once params, numbers.
    let (status, created) = call(c, &app, post.clone(), "runs/create", json!({"start_time": 5})).await;
    assert_eq!(status, 200, "{created}");
    let run = created["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(created["run"]["info"]["experiment_id"], "0");
    let metrics: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "timestamp": i, "step": i})).collect();
    let message = mlflow_error(
        call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "metrics": metrics})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    assert!(message.contains("at most 1000 metrics"), "{message}");
    let params: Vec<Value> = (0..101).map(|i| json!({"key": format!("p{i}"), "value": "v"})).collect();
    mlflow_error(
        call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "params": params})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    let (status, _) =
        call(c, &app, post.clone(), "runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.1"})).await;
    assert_eq!(status, 200);
    let message = mlflow_error(
        call(c, &app, post.clone(), "runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.2"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    assert!(message.contains("'0.1'"), "{message}");
    let message = mlflow_error(
        call(
            c,
            &app,
            post.clone(),
            "runs/log-metric",
            json!({"run_id": run, "key": "loss", "value": "a lot", "timestamp": 1}),
        )
        .await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    assert!(message.contains("\"a lot\" is not a metric value"), "{message}");
    mlflow_error(
        call(
            c,
            &app,
            post.clone(),
            "runs/log-metric",
            json!({"run_id": run, "key": "bad\"key", "value": 1, "timestamp": 1}),
        )
        .await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    mlflow_error(
        call(c, &app, post.clone(), "runs/update", json!({"run_id": run, "status": "DONE"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    // A refused batch stores nothing of itself: the param's first value stays, no point was kept.
    let (_, fetched) = call(c, &app, Method::GET, "runs/get", json!({"run_id": run})).await;
    assert_eq!(fetched["run"]["data"]["params"], json!([{"key": "lr", "value": "0.1"}]));
    assert_eq!(fetched["run"]["data"]["metrics"], json!([]));
    let (_, history) =
        call(c, &app, Method::GET, "metrics/get-history", json!({"run_id": run, "metric_key": "m"})).await;
    assert_eq!(history, json!({"metrics": []}));

    // History pages through max_results with a token.
    let points: Vec<Value> =
        (0..5).map(|i| json!({"key": "m", "value": i as f64 / 2.0, "timestamp": 100 + i, "step": i})).collect();
    assert_eq!(call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "metrics": points})).await.0, 200);
    let (_, first) = call(
        c,
        &app,
        Method::GET,
        "metrics/get-history",
        json!({"run_id": run, "metric_key": "m", "max_results": "3"}),
    )
    .await;
    assert_eq!(first["metrics"].as_array().unwrap().len(), 3);
    let token = first["next_page_token"].as_str().expect("a next page").to_string();
    let (_, rest) = call(
        c,
        &app,
        Method::GET,
        "metrics/get-history",
        json!({"run_id": run, "metric_key": "m", "max_results": "3", "page_token": token}),
    )
    .await;
    assert_eq!(
        rest["metrics"],
        json!([{"key": "m", "value": 1.5, "timestamp": 103, "step": 3}, {"key": "m", "value": 2.0, "timestamp": 104, "step": 4}])
    );
    assert!(rest.get("next_page_token").is_none());

    // Across chunks of stored points (512 each), a later batch filling the last one first.
    for (from, to) in [(0, 600), (600, 1100)] {
        let points: Vec<Value> =
            (from..to).map(|i| json!({"key": "long", "value": i, "timestamp": i, "step": i})).collect();
        assert_eq!(
            call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "metrics": points})).await.0,
            200
        );
    }
    let mut steps = Vec::new();
    let mut token = String::new();
    loop {
        let query = json!({"run_id": run, "metric_key": "long", "max_results": "700", "page_token": token});
        let (_, page) = call(c, &app, Method::GET, "metrics/get-history", query).await;
        steps.extend(page["metrics"].as_array().unwrap().iter().map(|m| m["step"].as_i64().unwrap()));
        match page["next_page_token"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(steps, (0..1100).collect::<Vec<i64>>(), "every point once, in order, over two pages");

    // Registry: names as MLflow allows them, and one URL path segment; versions are numbers.
    assert_eq!(call(c, &app, post.clone(), "registered-models/create", json!({"name": "Fraud Model"})).await.0, 200);
    let model = json(app.get("/api/v1/models/Fraud%20Model").await, 200).await;
    assert_eq!(model["name"], "Fraud Model");
    for bad in ["fraud/model", "fraud:model", "50% off", " padded"] {
        let message = mlflow_error(
            call(c, &app, post.clone(), "registered-models/create", json!({"name": bad})).await,
            "INVALID_PARAMETER_VALUE",
            400,
        );
        assert!(message.contains("name"), "{bad}: {message}");
    }
    assert_eq!(call(c, &app, post.clone(), "registered-models/create", json!({"name": "churn"})).await.0, 200);
    mlflow_error(
        call(c, &app, post.clone(), "registered-models/create", json!({"name": "churn"})).await,
        "RESOURCE_ALREADY_EXISTS",
        400,
    );
    mlflow_error(
        call(c, &app, post.clone(), "model-versions/create", json!({"name": "churn", "source": "no scheme"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    mlflow_error(
        call(c, &app, post.clone(), "model-versions/create", json!({"name": "nope", "source": "s3://b/m"})).await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    let digest = json!([{"key": "modelgate.artifact_digest", "value": format!("sha256:{}", "cd".repeat(32))}]);
    let (status, v1) = call(
        c,
        &app,
        post.clone(),
        "model-versions/create",
        json!({"name": "churn", "source": "s3://b/m", "run_id": run, "tags": digest}),
    )
    .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["model_version"]["version"], "1");
    // Points logged to the run after registration reach the version's series too.
    let late = json!([{"key": "late", "value": 1.25, "timestamp": 7, "step": 0}]);
    assert_eq!(call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "metrics": late})).await.0, 200);
    let series = json(app.get("/api/v1/models/churn/versions/1/metrics").await, 200).await;
    let keys: Vec<&str> = series.as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["late", "long", "m"]);

    // Aliases: labels, reserved names, unguarded environments deploy, guarded ones refuse.
    mlflow_error(
        call(c, &app, post.clone(), "registered-models/alias", json!({"name": "churn", "alias": "v2", "version": "1"}))
            .await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    mlflow_error(
        call(
            c,
            &app,
            post.clone(),
            "registered-models/alias",
            json!({"name": "churn", "alias": "best", "version": "9"}),
        )
        .await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    assert_eq!(
        call(
            c,
            &app,
            post.clone(),
            "registered-models/alias",
            json!({"name": "churn", "alias": "staging", "version": "1"})
        )
        .await
        .0,
        200
    );
    let live = json(app.get("/api/v1/models/churn/environments/staging").await, 200).await;
    assert_eq!(live["version"], 1, "setting the alias of an unguarded environment deploys there");
    let message = mlflow_error(
        call(
            c,
            &app,
            post.clone(),
            "registered-models/alias",
            json!({"name": "churn", "alias": "production", "version": "1"}),
        )
        .await,
        "PERMISSION_DENIED",
        403,
    );
    assert!(message.contains("/api/v1/models/churn/environments/production/rollbacks"), "{message}");
    let (_, read) =
        call(c, &app, Method::GET, "registered-models/alias", json!({"name": "churn", "alias": "staging"})).await;
    assert_eq!(read["model_version"]["aliases"], json!(["staging"]));
    let label = json!({"name": "churn", "alias": "best", "version": "1"});
    assert_eq!(call(c, &app, post.clone(), "registered-models/alias", label).await.0, 200);
    let (_, read) =
        call(c, &app, Method::GET, "registered-models/alias", json!({"name": "churn", "alias": "best"})).await;
    assert_eq!(read["model_version"]["version"], "1");
    assert_eq!(read["model_version"]["aliases"], json!(["best", "staging"]), "a label beside an environment");
    for (method, body) in [
        (post.clone(), json!({"name": "nope", "alias": "best", "version": "1"})),
        (Method::GET, json!({"name": "nope", "alias": "best"})),
    ] {
        let message =
            mlflow_error(call(c, &app, method, "registered-models/alias", body).await, "RESOURCE_DOES_NOT_EXIST", 404);
        assert!(message.contains("'nope'"), "{message}");
    }
    mlflow_error(
        call(c, &app, Method::GET, "registered-models/alias", json!({"name": "churn", "alias": "worst"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    mlflow_error(
        call(c, &app, Method::DELETE, "registered-models/alias", json!({"name": "churn", "alias": "staging"})).await,
        "PERMISSION_DENIED",
        403,
    );

    // Natively, too, a digest is attached once and never changed.
    let patch = app
        .patch("/api/v1/models/churn/versions/1", &json!({"artifact_digest": format!("sha256:{}", "ef".repeat(32))}))
        .await;
    modelgate_tests::expect_error(patch, 409, Some("artifact_digest")).await;

    // A model with versions is not deleted; an empty one is.
    mlflow_error(
        call(c, &app, Method::DELETE, "registered-models/delete", json!({"name": "churn"})).await,
        "PERMISSION_DENIED",
        403,
    );
    assert_eq!(call(c, &app, post.clone(), "registered-models/create", json!({"name": "typo"})).await.0, 200);
    assert_eq!(call(c, &app, Method::DELETE, "registered-models/delete", json!({"name": "typo"})).await.0, 200);
    mlflow_error(
        call(c, &app, Method::GET, "registered-models/get", json!({"name": "typo"})).await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    let message = mlflow_error(
        call(c, &app, Method::GET, "registered-models/search", json!({"filter": "creation_timestamp > 5"})).await,
        "INVALID_PARAMETER_VALUE",
        400,
    );
    assert!(message.starts_with("filter: "), "{message}");
    app.stop().await;
}

/// Every endpoint of the MLflow API: anonymous callers are refused `UNAUTHENTICATED`, a viewer
/// reads but every write is refused `PERMISSION_DENIED` and changes nothing.
async fn every_mlflow_endpoint_checks_the_callers_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let (_, created) = call(c, &app, Method::POST, "runs/create", json!({})).await;
    let run = created["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(call(c, &app, Method::POST, "registered-models/create", json!({"name": "m"})).await.0, 200);
    let version = json!({"name": "m", "source": "s3://b/m"});
    assert_eq!(call(c, &app, Method::POST, "model-versions/create", version.clone()).await.0, 200);
    assert_eq!(
        call(c, &app, Method::POST, "registered-models/alias", json!({"name": "m", "alias": "best", "version": "1"}))
            .await
            .0,
        200
    );
    let logged = json!({"experiment_id": "0", "source_run_id": run, "tags": [{"key": "t", "value": "1"}]});
    let (_, logged) = call(c, &app, Method::POST, "logged-models", logged).await;
    let logged = format!("logged-models/{}", logged["model"]["info"]["model_id"].as_str().unwrap());
    let (logged_tags, logged_tag, logged_params) =
        (format!("{logged}/tags"), format!("{logged}/tags/t"), format!("{logged}/params"));
    let anonymous = bearer_client("");
    let viewer = app.client_as("viewer", &[Role::Viewer]).await;
    let head = app.audit_head().await;

    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);
    let reads = [
        (get.clone(), "experiments/get", json!({"experiment_id": "0"})),
        (get.clone(), "experiments/get-by-name", json!({"experiment_name": "Default"})),
        (post.clone(), "experiments/search", json!({})),
        (get.clone(), "runs/get", json!({"run_id": run})),
        (get.clone(), "metrics/get-history", json!({"run_id": run, "metric_key": "m"})),
        (get.clone(), "registered-models/get", json!({"name": "m"})),
        (get.clone(), "registered-models/search", json!({})),
        (get.clone(), "registered-models/alias", json!({"name": "m", "alias": "best"})),
        (get.clone(), "model-versions/get", json!({"name": "m", "version": "1"})),
        (get.clone(), "model-versions/search", json!({"filter": "name='m'"})),
        (get.clone(), "model-versions/get-download-uri", json!({"name": "m", "version": "1"})),
        (get.clone(), logged.as_str(), json!({})),
        (post.clone(), "logged-models/search", json!({"experiment_ids": ["0"]})),
        (post.clone(), "runs/search", json!({"experiment_ids": ["0"], "filter": "metrics.m > 0"})),
        (post.clone(), "registered-models/get-latest-versions", json!({"name": "m"})),
    ];
    let writes = [
        (post.clone(), "experiments/create", json!({"name": "e"})),
        (post.clone(), "runs/create", json!({})),
        (post.clone(), "runs/update", json!({"run_id": run, "status": "FAILED"})),
        (post.clone(), "runs/log-batch", json!({"run_id": run, "params": [{"key": "p", "value": "1"}]})),
        (post.clone(), "runs/log-metric", json!({"run_id": run, "key": "m", "value": 1, "timestamp": 1})),
        (post.clone(), "runs/log-parameter", json!({"run_id": run, "key": "p", "value": "1"})),
        (post.clone(), "runs/set-tag", json!({"run_id": run, "key": "t", "value": "1"})),
        (post.clone(), "registered-models/create", json!({"name": "n"})),
        (patch.clone(), "registered-models/update", json!({"name": "m", "description": "d"})),
        (delete.clone(), "registered-models/delete", json!({"name": "m"})),
        (post.clone(), "registered-models/alias", json!({"name": "m", "alias": "best", "version": "1"})),
        (delete.clone(), "registered-models/alias", json!({"name": "m", "alias": "best"})),
        (post.clone(), "model-versions/create", version),
        (patch.clone(), "model-versions/update", json!({"name": "m", "version": "1", "description": "d"})),
        (post.clone(), "model-versions/set-tag", json!({"name": "m", "version": "1", "key": "k", "value": "v"})),
        (post.clone(), "logged-models", json!({"experiment_id": "0"})),
        (patch.clone(), logged.as_str(), json!({"status": "LOGGED_MODEL_READY"})),
        (patch.clone(), logged_tags.as_str(), json!({"tags": [{"key": "k", "value": "v"}]})),
        (delete.clone(), logged_tag.as_str(), json!({})),
        (post.clone(), logged_params.as_str(), json!({"params": [{"key": "k", "value": "v"}]})),
        (delete.clone(), logged.as_str(), json!({})),
        (post.clone(), "runs/log-inputs", json!({"run_id": run, "datasets": []})),
        (post.clone(), "runs/outputs", json!({"run_id": run, "models": []})),
        (post.clone(), "experiments/update", json!({"experiment_id": "0", "new_name": "x"})),
        (post.clone(), "experiments/set-experiment-tag", json!({"experiment_id": "0", "key": "k", "value": "v"})),
        (post.clone(), "experiments/delete-experiment-tag", json!({"experiment_id": "0", "key": "k"})),
        (post.clone(), "experiments/delete", json!({"experiment_id": "0"})),
        (post.clone(), "experiments/restore", json!({"experiment_id": "0"})),
        (post.clone(), "runs/delete", json!({"run_id": run})),
        (post.clone(), "runs/restore", json!({"run_id": run})),
        (post.clone(), "runs/delete-tag", json!({"run_id": run, "key": "t"})),
        (post.clone(), "registered-models/rename", json!({"name": "m", "new_name": "m2"})),
        (post.clone(), "registered-models/set-tag", json!({"name": "m", "key": "k", "value": "v"})),
        (delete.clone(), "registered-models/delete-tag", json!({"name": "m", "key": "k"})),
        (post.clone(), "model-versions/transition-stage", json!({"name": "m", "version": "1", "stage": "Staging"})),
        (delete.clone(), "model-versions/delete", json!({"name": "m", "version": "1"})),
        (delete.clone(), "model-versions/delete-tag", json!({"name": "m", "version": "1", "key": "k"})),
    ];
    for (method, endpoint, body) in reads.iter().chain(writes.iter()) {
        let answer = call(&anonymous, &app, method.clone(), endpoint, body.clone()).await;
        mlflow_error(answer, "UNAUTHENTICATED", 401);
    }
    for (method, endpoint, body) in &reads {
        let (status, answer) = call(&viewer, &app, method.clone(), endpoint, body.clone()).await;
        assert_eq!(status, 200, "a viewer reads {endpoint}: {answer}");
    }
    for (method, endpoint, body) in &writes {
        let answer = call(&viewer, &app, method.clone(), endpoint, body.clone()).await;
        mlflow_error(answer, "PERMISSION_DENIED", 403);
    }
    assert_eq!(app.audit_head().await, head, "no refused write left an entry");
    app.stop().await;
}

/// Registers `model` through the MLflow API with `versions` versions.
async fn registered_model_with_versions(app: &TestApp, model: &str, versions: usize) {
    let c = &app.client;
    assert_eq!(call(c, app, Method::POST, "registered-models/create", json!({"name": model})).await.0, 200);
    for _ in 0..versions {
        let version = json!({"name": model, "source": format!("s3://bucket/{model}")});
        assert_eq!(call(c, app, Method::POST, "model-versions/create", version).await.0, 200);
    }
}

/// Sets of one alias race (its current target is read, or guessed, before the writer's turn, and
/// the move refused unless it still holds): every audited set names the version it replaced, so the entries form
/// one unbroken line of moves, and the alias ends where the last one put it.
async fn concurrent_alias_sets_each_record_the_version_they_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    registered_model_with_versions(&app, "race", 4).await;
    let sets = (0..40).map(|i| {
        let body = json!({"name": "race", "alias": "champion", "version": (i % 4 + 1).to_string()});
        call(c, &app, Method::POST, "registered-models/alias", body)
    });
    for (status, body) in futures::future::join_all(sets).await {
        assert_eq!(status, 200, "{body}");
    }

    let page = json(app.get("/api/v1/audit?action=alias.set&model=race&limit=100").await, 200).await;
    let mut entries = page["entries"].as_array().unwrap().clone();
    entries.sort_by_key(|e| e["seq"].as_i64().unwrap());
    assert_eq!(entries.len(), 40);
    let mut live: Option<i64> = None;
    for e in &entries {
        assert_eq!(e["before"]["version"].as_i64(), live, "entry {} names the version it replaced", e["seq"]);
        live = e["after"]["version"].as_i64();
    }
    let (status, got) =
        call(c, &app, Method::GET, "registered-models/alias", json!({"name": "race", "alias": "champion"})).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["model_version"]["version"].as_str().and_then(|v| v.parse().ok()), live);
    app.stop().await;
}

/// A set is made on where this server's last set left the alias; when something else changed it
/// since (here: the row deleted behind the server's back, as another process could; then an
/// environment created with the alias's name), the database refuses the guess and the set reads
/// the alias again: the audit entry names the version really replaced, and a guarded environment's
/// alias is refused, not moved as a label.
async fn an_alias_set_on_a_stale_guess_reads_the_alias_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    registered_model_with_versions(&app, "guess", 2).await;
    let set = |version: &str| {
        let body = json!({"name": "guess", "alias": "champion", "version": version});
        call(c, &app, Method::POST, "registered-models/alias", body)
    };
    assert_eq!(set("1").await.0, 200);
    sqlx::query("DELETE FROM model_aliases WHERE alias = 'champion'").execute(app.store.db.pool()).await.unwrap();
    assert_eq!(set("2").await.0, 200);
    assert_eq!(set("1").await.0, 200);
    let page = json(app.get("/api/v1/audit?action=alias.set&model=guess&limit=10").await, 200).await;
    let mut entries = page["entries"].as_array().unwrap().clone();
    entries.sort_by_key(|e| e["seq"].as_i64());
    let moves: Vec<_> =
        entries.iter().map(|e| (e["before"]["version"].as_i64(), e["after"]["version"].as_i64())).collect();
    assert_eq!(
        moves,
        [(None, Some(1)), (None, Some(2)), (Some(2), Some(1))],
        "the set after the deletion replaced nothing"
    );

    json(app.post("/api/v1/environments", &json!({"name": "champion"})).await, 201).await;
    let refused = mlflow_error(set("2").await, "PERMISSION_DENIED", 403);
    assert!(refused.contains("champion"), "{refused}");
    let label: Option<i64> = sqlx::query_scalar("SELECT version_number FROM model_aliases WHERE alias = 'champion'")
        .fetch_optional(app.store.db.pool())
        .await
        .unwrap();
    assert_eq!(label, Some(1), "the refused set left the label alone");
    app.stop().await;
}

/// A diverging run logs NaN and infinities, as MLflow allows: the run's history and latest values
/// give them back under protobuf's names; the version registered from the run charts the finite
/// points only, however the points reached it (copied at registration or mirrored later).
async fn non_finite_metric_values_stay_in_the_run_and_out_of_the_version_charts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let post = Method::POST;
    let (_, created) = call(c, &app, post.clone(), "runs/create", json!({"start_time": 1})).await;
    let run = created["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let logged = |key: &str, values: Vec<Value>, first_step: usize| {
        let metrics: Vec<Value> = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| json!({"key": key, "value": value, "timestamp": 10 + i, "step": first_step + i}))
            .collect();
        call(c, &app, post.clone(), "runs/log-batch", json!({"run_id": run, "metrics": metrics}))
    };
    assert_eq!(logged("loss", vec![json!(0.5), json!("NaN"), json!("Infinity")], 0).await.0, 200);
    assert_eq!(call(c, &app, post.clone(), "registered-models/create", json!({"name": "diverged"})).await.0, 200);
    let version = json!({"name": "diverged", "source": "s3://bucket/diverged", "run_id": run});
    assert_eq!(call(c, &app, post.clone(), "model-versions/create", version).await.0, 200);
    assert_eq!(logged("loss", vec![json!("-Infinity"), json!(0.25)], 3).await.0, 200);
    let single = json!({"run_id": run, "key": "accuracy", "value": "NaN", "timestamp": 20, "step": 0});
    assert_eq!(call(c, &app, post.clone(), "runs/log-metric", single).await.0, 200);

    let (_, history) =
        call(c, &app, Method::GET, "metrics/get-history", json!({"run_id": run, "metric_key": "loss"})).await;
    let values: Vec<&Value> = history["metrics"].as_array().unwrap().iter().map(|m| &m["value"]).collect();
    assert_eq!(values, [&json!(0.5), &json!("NaN"), &json!("Infinity"), &json!("-Infinity"), &json!(0.25)]);
    let (_, fetched) = call(c, &app, Method::GET, "runs/get", json!({"run_id": run})).await;
    assert_eq!(
        fetched["run"]["data"]["metrics"],
        json!([
            {"key": "accuracy", "value": "NaN", "timestamp": 20, "step": 0},
            {"key": "loss", "value": 0.25, "timestamp": 11, "step": 4}
        ])
    );

    let series = json(app.get("/api/v1/models/diverged/versions/1/metrics").await, 200).await;
    let loss = series.as_array().unwrap().iter().find(|s| s["key"] == "loss").expect("a loss series");
    assert_eq!((loss["count"].as_i64(), loss["min"].as_f64(), loss["max"].as_f64()), (Some(2), Some(0.25), Some(0.5)));
    assert!(series.as_array().unwrap().iter().all(|s| s["key"] != "accuracy"), "{series}");
    app.stop().await;
}

/// The answer to an artifact-proxy request: status and JSON body.
pub(crate) async fn artifact_call(
    client: &Client,
    app: &TestApp,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let url = app.url(&format!("/api/2.0/mlflow-artifacts/artifacts{path}"));
    let response = client.request(method, url).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
}

async fn run_artifacts_go_up_and_come_back_byte_identical_with_server_computed_digests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = modelgate_tests::create_user(&app.store, "trainer", &[Role::Operator]).await;
    let out = client_script(&app, "artifacts.py", &["churn"], &[("MLFLOW_TRACKING_TOKEN", &token)]).await;
    let (run, experiment) = (out["run_id"].as_str().unwrap(), out["experiment_id"].as_str().unwrap());

    // The digest the server computed while each file streamed in is the client's own.
    let digests = out["sha256"].as_object().unwrap();
    assert_eq!(digests.len(), 6, "{out}");
    for (path, sha256) in digests {
        let url = app.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{path}"));
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["etag"], format!("\"sha256:{}\"", sha256.as_str().unwrap()).as_str(), "{path}");
    }

    // Every upload is audited, by the trainer.
    let page = json(app.get("/api/v1/audit?action=artifact.upload").await, 200).await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{page}");
    assert!(entries.iter().all(|e| e["actor_user"] == "trainer"), "{page}");
    app.stop().await;
}

async fn artifact_requests_that_escape_or_break_off_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, experiment) = call(&app.client, &app, Method::POST, "experiments/create", json!({"name": "escapes"})).await;
    let experiment = experiment["experiment_id"].as_str().unwrap().to_string();
    let (_, run) =
        call(&app.client, &app, Method::POST, "runs/create", json!({"experiment_id": experiment, "start_time": 1}))
            .await;
    let run = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let root = format!("/{experiment}/{run}/artifacts");
    let put = Method::PUT;

    // Paths that reach outside the store, or outside any run, are refused and name the field.
    for path in [format!("{root}/..%2F..%2F..%2Fetc%2Fpasswd"), format!("{root}/a%5C..%5Cb"), "/%2Fetc%2Fpasswd".into()]
    {
        let message = mlflow_error(
            artifact_call(&app.client, &app, put.clone(), &path, b"x".to_vec()).await,
            "INVALID_PARAMETER_VALUE",
            400,
        );
        assert!(message.starts_with("path: "), "{path}: {message}");
    }
    let message = mlflow_error(
        artifact_call(&app.client, &app, put.clone(), &format!("/{experiment}/{}/artifacts/f", "0".repeat(32)), vec![])
            .await,
        "RESOURCE_DOES_NOT_EXIST",
        404,
    );
    assert!(message.contains("no run"), "{message}");
    let viewer = app.client_as("watcher", &[Role::Viewer]).await;
    mlflow_error(
        artifact_call(&viewer, &app, put.clone(), &format!("{root}/f"), b"x".to_vec()).await,
        "PERMISSION_DENIED",
        403,
    );

    // An upload that breaks off (the client promised 1,000 bytes and hung up after 10) stores nothing.
    let token = modelgate_tests::create_user(&app.store, "uploader", &[Role::Operator]).await;
    let mut socket = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "PUT /api/2.0/mlflow-artifacts/artifacts{root}/broken.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1000\r\n\r\n0123456789"
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes()).await.unwrap();
    drop(socket);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let listing = json(
        app.client.get(app.url(&format!("/api/2.0/mlflow-artifacts/artifacts?path={root}"))).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(listing, json!({"files": []}), "nothing of the broken upload is listed");

    // A 0-byte file is a file; deleting it leaves nothing behind, and is audited.
    let (status, _) = artifact_call(&app.client, &app, put, &format!("{root}/empty"), vec![]).await;
    assert_eq!(status, 200);
    let listing = json(
        app.client.get(app.url(&format!("/api/2.0/mlflow-artifacts/artifacts?path={root}"))).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(listing, json!({"files": [{"path": "empty", "is_dir": false, "file_size": 0}]}));
    let (status, _) = artifact_call(&app.client, &app, Method::DELETE, &format!("{root}/empty"), vec![]).await;
    assert_eq!(status, 200);
    let (status, body) = artifact_call(&app.client, &app, Method::GET, &format!("{root}/empty"), vec![]).await;
    assert_eq!((status, body["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    let page = json(app.get("/api/v1/audit?action=artifact.delete").await, 200).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");

    // A file uploaded again is replaced whole: readers get the new bytes, the old ones are gone.
    for content in ["first draft", "final"] {
        let (status, _) =
            artifact_call(&app.client, &app, Method::PUT, &format!("{root}/notes.txt"), content.into()).await;
        assert_eq!(status, 200);
    }
    let url = app.url(&format!("/api/2.0/mlflow-artifacts/artifacts{root}/notes.txt"));
    assert_eq!(app.client.get(url).send().await.unwrap().text().await.unwrap(), "final");
    assert_eq!(app.stored_objects(), 1, "only the bytes a recorded file points at are kept");
    app.stop().await;
}
