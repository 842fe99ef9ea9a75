"""A team's everyday MLflow code through the real, unmodified `mlflow` client and scikit-learn:
autologging, searching runs, tidying experiments and runs, and the registry calls of MLflow 2 and 3
(tags, rename, stages, latest versions, deletes) on model names as MLflow users write them.

Phases (each prints one JSON line; an `assert` failing exits non-zero with its message):
  autolog <experiment>        -> `mlflow.sklearn.autolog()`: the run, its metrics, files and model
  search <experiment>         -> `search_runs` filtered and ordered, pages, delete/restore, tags
  registry <model>            -> registered-model and version calls, stages onto environments
"""

import json
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

PHASE, NAME = sys.argv[1], sys.argv[2]
client = MlflowClient()


def refused(call):
    """The MlflowException `call` raises: its error code and message."""
    try:
        call()
    except MlflowException as e:
        return {"code": e.error_code, "message": e.message}
    raise AssertionError("the call was not refused")


if PHASE == "autolog":
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    mlflow.set_experiment(NAME)
    mlflow.sklearn.autolog()
    with mlflow.start_run() as run:
        LogisticRegression(max_iter=500).fit(X, y)
    # MLflow 3's active model: later metrics are the logged model's too.
    active = mlflow.set_active_model(name="iris-active")
    with mlflow.start_run():
        mlflow.log_metric("val_accuracy", 0.93)
    active_metrics = {m.key: m.value for m in mlflow.get_logged_model(active.model_id).metrics}
    finished = client.get_run(run.info.run_id)
    files = sorted(f.path for f in client.list_artifacts(run.info.run_id))
    models = mlflow.search_logged_models(
        experiment_ids=[finished.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    print(json.dumps({
        "run_id": run.info.run_id,
        "status": finished.info.status,
        "metrics": finished.data.metrics,
        "params": finished.data.params,
        "files": files,
        "models": [{"model_id": m.model_id, "status": str(m.status), "source_run_id": m.source_run_id} for m in models],
        "active_metrics": active_metrics,
    }))

elif PHASE == "search":
    experiment_id = mlflow.set_experiment(NAME).experiment_id
    runs = []
    for i in range(12):
        with mlflow.start_run(run_name=f"trial-{i}") as run:
            mlflow.log_param("kind", "tree" if i % 2 else "linear")
            mlflow.log_metric("accuracy", i / 12)
            mlflow.set_tag("owner", "ana" if i < 6 else "ben")
        runs.append(run.info.run_id)

    frame = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="metrics.accuracy > 0.3 and params.kind = 'tree' and tags.owner != 'nobody'",
        order_by=["metrics.accuracy DESC"],
    )
    ordered = list(frame["run_id"])
    assert list(frame["metrics.accuracy"]) == sorted(frame["metrics.accuracy"], reverse=True), frame
    assert "params.kind" in frame.columns and "tags.owner" in frame.columns, list(frame.columns)

    # Pages of 5, in MLflow's default order (newest first).
    pages, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=5, page_token=token)
        pages.append([r.info.run_id for r in page])
        token = page.token
        if not token:
            break

    by_name = client.search_runs([experiment_id], filter_string="attributes.run_name LIKE 'trial-1%'")
    ascending = client.search_runs([experiment_id], order_by=["metrics.accuracy"], max_results=3)

    client.delete_run(runs[11])
    after_delete = [r.info.run_id for r in client.search_runs([experiment_id])]
    deleted_only = client.search_runs([experiment_id], run_view_type=mlflow.entities.ViewType.DELETED_ONLY)
    log_to_deleted = refused(lambda: client.log_metric(runs[11], "accuracy", 1.0))
    client.restore_run(runs[11])
    restored = client.get_run(runs[11]).info.lifecycle_stage

    client.delete_tag(runs[0], "owner")
    tags_after = client.get_run(runs[0]).data.tags

    client.rename_experiment(experiment_id, f"{NAME}-renamed")
    client.set_experiment_tag(experiment_id, "team", "fraud")
    client.delete_experiment(experiment_id)
    hidden = [e.name for e in client.search_experiments()]
    deleted_stage = client.get_experiment(experiment_id).lifecycle_stage
    runs_while_deleted = len(client.search_runs([experiment_id]))
    client.restore_experiment(experiment_id)
    back = client.get_experiment(experiment_id)

    print(json.dumps({
        "runs": runs,
        "ordered": ordered,
        "pages": pages,
        "by_name": sorted(r.data.tags["mlflow.runName"] for r in by_name),
        "ascending": [r.info.run_id for r in ascending],
        "after_delete": after_delete,
        "deleted_only": [r.info.run_id for r in deleted_only],
        "log_to_deleted": log_to_deleted,
        "restored": restored,
        "tags_after": tags_after,
        "hidden": hidden,
        "deleted_stage": deleted_stage,
        "runs_while_deleted": runs_while_deleted,
        "back": {"name": back.name, "stage": back.lifecycle_stage, "tags": back.tags,
                 "runs": len(client.search_runs([experiment_id]))},
    }))

elif PHASE == "registry":
    source = "s3://models/{}/{}"
    digest = "sha256:" + "ab" * 32
    client.create_registered_model(NAME, tags={"team": "fraud", "tier": "1"})
    for n in range(1, 4):
        client.create_model_version(NAME, source.format(NAME, n), tags={"modelgate.artifact_digest": digest})
    client.set_registered_model_tag(NAME, "tier", "2")
    client.delete_registered_model_tag(NAME, "team")
    client.set_model_version_tag(NAME, "1", "reviewed", "yes")
    client.delete_model_version_tag(NAME, "1", "reviewed")

    staged = client.transition_model_version_stage(NAME, "2", "Staging")
    guarded = refused(lambda: client.transition_model_version_stage(NAME, "3", "Production"))
    unknown = refused(lambda: client.transition_model_version_stage(NAME, "3", "Archived"))
    latest = {v.current_stage: v.version for v in client.get_latest_versions(NAME)}
    latest_staging = [v.version for v in client.get_latest_versions(NAME, stages=["Staging"])]

    live_delete = refused(lambda: client.delete_model_version(NAME, "2"))
    client.delete_model_version(NAME, "3")
    gone = refused(lambda: client.get_model_version(NAME, "3"))

    renamed = f"{NAME} v2"
    client.rename_registered_model(NAME, renamed)
    model = client.get_registered_model(renamed)
    by_alias = client.get_model_version_by_alias(renamed, "staging")
    bad_name = refused(lambda: client.create_registered_model("fraud/detector"))
    print(json.dumps({
        "staged": {"version": staged.version, "stage": staged.current_stage},
        "guarded": guarded,
        "unknown": unknown,
        "latest": latest,
        "latest_staging": latest_staging,
        "live_delete": live_delete,
        "gone": gone,
        "renamed": {"name": model.name, "tags": model.tags,
                    "versions": sorted(v.version for v in client.search_model_versions(f"name = '{renamed}'"))},
        "by_alias": by_alias.version,
        "version_tags": client.get_model_version(renamed, "1").tags,
        "bad_name": bad_name,
    }))

else:
    sys.exit(f"unknown phase {PHASE}")
