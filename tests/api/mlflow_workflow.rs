//! A team's everyday MLflow code, unchanged, through the real `mlflow` client: autologging,
//! `search_runs`, tidying experiments and runs, the registry's tags, renames, stages, latest
//! versions and deletes — each checked against what Modelgate then holds and audits.

use app::domain::Role;
use modelgate_tests::{Backend, TestApp, json, on_both_backends};
use serde_json::Value;

use crate::mlflow::client_script;

on_both_backends!(
    autologging_records_metrics_files_and_a_model_and_finishes_the_run,
    runs_are_searched_filtered_ordered_paged_deleted_and_restored,
    registry_calls_map_stages_onto_environments_and_keep_what_history_names
);

async fn workflow(app: &TestApp, phase: &str, name: &str) -> Value {
    let token = modelgate_tests::create_user(&app.store, &format!("{phase}-user"), &[Role::Operator]).await;
    client_script(app, "workflow.py", &[phase, name], &[("MLFLOW_TRACKING_TOKEN", &token)]).await
}

async fn autologging_records_metrics_files_and_a_model_and_finishes_the_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = workflow(&app, "autolog", "iris-autolog").await;
    assert_eq!(out["status"], "FINISHED", "{out}");
    let metrics = out["metrics"].as_object().unwrap();
    for key in ["training_accuracy_score", "training_f1_score", "training_log_loss"] {
        assert!(metrics.contains_key(key), "autolog's {key}: {out}");
    }
    assert!(metrics["training_accuracy_score"].as_f64().unwrap() > 0.9, "{out}");
    assert_eq!(out["params"]["max_iter"], "500", "{out}");
    let files: Vec<&str> = out["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(files.iter().any(|f| f.starts_with("training_confusion_matrix")), "the plots: {files:?}");
    let models = out["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{out}");
    assert_eq!(models[0]["source_run_id"], out["run_id"]);
    assert!(models[0]["status"].as_str().unwrap().contains("READY"), "{out}");
    assert_eq!(out["active_metrics"]["val_accuracy"], 0.93, "a metric logged under the active model: {out}");
    app.stop().await;
}

async fn runs_are_searched_filtered_ordered_paged_deleted_and_restored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = workflow(&app, "search", "churn-trials").await;
    let runs: Vec<&str> = out["runs"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let ids = |field: &str| -> Vec<String> {
        out[field].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
    };

    // accuracy is i/12 and kind is 'tree' for odd i: > 0.3 keeps 5, 7, 9, 11, best first.
    assert_eq!(ids("ordered"), [11, 9, 7, 5].map(|i| runs[i].to_string()), "{out}");
    // Pages of 5 in MLflow's default order (newest first), every run once.
    let pages: Vec<Vec<String>> = serde_json::from_value(out["pages"].clone()).unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2], "{out}");
    let newest_first: Vec<String> = runs.iter().rev().map(|r| r.to_string()).collect();
    assert_eq!(pages.concat(), newest_first);
    assert_eq!(out["by_name"], serde_json::json!(["trial-1", "trial-10", "trial-11"]));
    assert_eq!(ids("ascending"), [0, 1, 2].map(|i| runs[i].to_string()));

    // A deleted run leaves searches, refuses data, and comes back restored.
    assert!(!ids("after_delete").contains(&runs[11].to_string()));
    assert_eq!(ids("after_delete").len(), 11);
    assert_eq!(ids("deleted_only"), [runs[11].to_string()]);
    assert_eq!(out["log_to_deleted"]["code"], "INVALID_PARAMETER_VALUE", "{out}");
    assert!(out["log_to_deleted"]["message"].as_str().unwrap().contains("active"), "{out}");
    assert_eq!(out["restored"], "active");
    assert!(out["tags_after"].get("owner").is_none(), "{out}");

    // An experiment renamed, tagged, deleted with its runs and restored with them.
    assert!(!out["hidden"].as_array().unwrap().contains(&"churn-trials-renamed".into()), "{out}");
    assert_eq!(out["deleted_stage"], "deleted");
    assert_eq!(out["runs_while_deleted"], 0);
    assert_eq!(out["back"]["name"], "churn-trials-renamed");
    assert_eq!(out["back"]["stage"], "active");
    assert_eq!(out["back"]["tags"]["team"], "fraud");
    assert_eq!(out["back"]["runs"], 12);

    for action in ["experiment.update", "experiment.delete", "experiment.restore", "run.delete", "run.restore"] {
        let page = json(app.get(&format!("/api/v1/audit?action={action}")).await, 200).await;
        assert!(!page["entries"].as_array().unwrap().is_empty(), "{action} audited: {page}");
    }
    app.stop().await;
}

async fn registry_calls_map_stages_onto_environments_and_keep_what_history_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = workflow(&app, "registry", "IrisClf").await;

    // A stage is the environment of that name: Staging deploys; guarded Production is refused
    // with where to go instead; a stage with no environment is named as such.
    assert_eq!(out["staged"]["stage"], "Staging", "{out}");
    let live = json(app.get("/api/v1/models/IrisClf%20v2/environments/staging").await, 200).await;
    assert_eq!(live["version"], 2, "{live}");
    assert_eq!(out["guarded"]["code"], "PERMISSION_DENIED", "{out}");
    let message = out["guarded"]["message"].as_str().unwrap();
    assert!(message.contains("/deploy") && message.contains("/rollbacks"), "{message}");
    assert_eq!(out["unknown"]["code"], "INVALID_PARAMETER_VALUE");
    assert!(out["unknown"]["message"].as_str().unwrap().contains("production"), "{out}");
    assert_eq!(out["latest"]["Staging"], "2", "{out}");
    assert_eq!(out["latest"]["None"], "3", "the newest version live nowhere: {out}");
    assert_eq!(out["latest_staging"], serde_json::json!(["2"]));

    // A version history names is kept; one it never named is deleted, its number not reused.
    assert_eq!(out["live_delete"]["code"], "RESOURCE_CONFLICT", "{out}");
    assert_eq!(out["gone"]["code"], "RESOURCE_DOES_NOT_EXIST", "{out}");
    assert_eq!(out["renamed"]["versions"], serde_json::json!(["1", "2"]), "{out}");
    assert_eq!(out["renamed"]["name"], "IrisClf v2");
    assert_eq!(out["renamed"]["tags"], serde_json::json!({"tier": "2"}), "{out}");
    assert_eq!(out["by_alias"], "2", "the renamed model is still live in staging");
    assert!(out["version_tags"].get("reviewed").is_none(), "{out}");
    assert_eq!(out["bad_name"]["code"], "INVALID_PARAMETER_VALUE", "{out}");

    let model = json(app.get("/api/v1/models/IrisClf%20v2").await, 200).await;
    assert_eq!((model["version_count"].as_i64(), model["latest_version"].as_i64()), (Some(2), Some(2)), "{model}");
    let page = json(app.get("/api/v1/audit?action=version.delete").await, 200).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    app.stop().await;
}
