"""A training pipeline as teams write it with the real, unmodified `mlflow` client.

Two phases, so the caller can deploy in between: `train MODEL ENV` logs a run and registers a
version from it; `release MODEL ENV` works with aliases once that version is live in ENV. Runs
against the server named by MLFLOW_TRACKING_URI (credentials from MLFLOW_TRACKING_TOKEN or
MLFLOW_TRACKING_USERNAME/PASSWORD); every value the server returns is checked. Prints one JSON
line for the caller to check through Modelgate's own API.
"""

import json
import math
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

PHASE, MODEL, GUARDED_ALIAS = sys.argv[1:4]
DIGEST = "sha256:" + "ab" * 32
EXPERIMENT = f"{MODEL}-training"
STEPS = 1000  # two keys per step: 2,000 metric points


def expect_error(code, call, *args, **kwargs):
    """Calls `call` and checks that the server refused it with MLflow error `code`."""
    try:
        call(*args, **kwargs)
    except MlflowException as e:
        assert e.error_code == code, f"{call.__name__}: expected {code}, got {e.error_code}: {e}"
        return str(e)
    raise AssertionError(f"{call.__name__} succeeded; expected {code}")


client = MlflowClient()


def train():

    # Experiment: created once, found by name after.
    assert mlflow.get_experiment_by_name(EXPERIMENT) is None
    experiment_id = mlflow.create_experiment(EXPERIMENT, tags={"team": "fraud"})
    experiment = mlflow.set_experiment(EXPERIMENT)
    assert experiment.experiment_id == experiment_id, (experiment.experiment_id, experiment_id)
    assert experiment.name == EXPERIMENT
    assert experiment.tags.get("team") == "fraud", experiment.tags
    expect_error("RESOURCE_ALREADY_EXISTS", mlflow.create_experiment, EXPERIMENT)
    found = mlflow.search_experiments(filter_string=f"name LIKE '{MODEL}-%'")
    assert [e.experiment_id for e in found] == [experiment_id], found

    params = {"learning_rate": "0.05", "max_depth": "8", "optimizer": "adam"}
    with mlflow.start_run(run_name="nightly-train") as run:
        run_id = run.info.run_id
        mlflow.log_params(params)
        mlflow.log_param("epochs", 1000)
        mlflow.set_tag("stage", "candidate")
        mlflow.set_tag("stage", "validated")  # tags overwrite
        # Parameters are write-once: the same value again is fine, another value is refused.
        mlflow.log_param("epochs", 1000)
        expect_error("INVALID_PARAMETER_VALUE", mlflow.log_param, "epochs", 5)
        batch = []
        for step in range(STEPS):
            ts = 1_700_000_000_000 + step * 1000
            batch.append(mlflow.entities.Metric("loss", 1.0 / (step + 1), ts, step))
            batch.append(mlflow.entities.Metric("accuracy", 0.5 + step / (2 * STEPS), ts, step))
            if len(batch) == 1000:
                client.log_batch(run_id, metrics=batch)
                batch = []
        mlflow.log_metric("auc", 0.91, step=0)
        mlflow.log_metrics({"auc": 0.93, "f1": 0.88}, step=1)

    fetched = client.get_run(run_id)
    assert fetched.info.status == "FINISHED", fetched.info.status
    assert fetched.info.run_name == "nightly-train", fetched.info.run_name
    assert fetched.info.experiment_id == experiment_id
    assert fetched.info.end_time is not None and fetched.info.end_time >= fetched.info.start_time
    assert fetched.data.params == {**params, "epochs": "1000"}, fetched.data.params
    assert fetched.data.tags["stage"] == "validated", fetched.data.tags
    assert fetched.data.metrics["loss"] == 1.0 / STEPS, fetched.data.metrics
    assert fetched.data.metrics["auc"] == 0.93, fetched.data.metrics

    history = client.get_metric_history(run_id, "loss")
    assert len(history) == STEPS, len(history)
    assert [m.step for m in history] == list(range(STEPS))
    assert all(m.value == 1.0 / (m.step + 1) for m in history)
    assert history[10].timestamp == 1_700_000_000_000 + 10_000
    assert [m.value for m in client.get_metric_history(run_id, "auc")] == [0.91, 0.93]

    # A diverging run logs NaN and infinity, as MLflow allows; both come back as logged.
    with mlflow.start_run(run_name="diverged") as diverged:
        mlflow.log_metric("loss", float("nan"), step=0)
        mlflow.log_metric("loss", float("inf"), step=1)
    diverged_loss = [m.value for m in client.get_metric_history(diverged.info.run_id, "loss")]
    assert math.isnan(diverged_loss[0]) and diverged_loss[1] == math.inf, diverged_loss
    assert client.get_run(diverged.info.run_id).data.metrics["loss"] == math.inf

    # Register a version from the run; the digest tag makes it deployable.
    client.create_registered_model(MODEL, description="Fraud scoring")
    expect_error("RESOURCE_ALREADY_EXISTS", client.create_registered_model, MODEL)
    version = client.create_model_version(
        MODEL,
        f"runs:/{run_id}/model",
        run_id=run_id,
        description="from nightly",
        tags={"modelgate.artifact_digest": DIGEST},
    )
    assert version.version == "1", version.version
    assert version.run_id == run_id
    assert version.status == "READY"
    assert version.source == f"runs:/{run_id}/model"
    assert version.tags == {"modelgate.artifact_digest": DIGEST}, version.tags

    # A plain alias is a label: set, read, and read back on the version.
    client.set_registered_model_alias(MODEL, "champion", version.version)
    by_alias = client.get_model_version_by_alias(MODEL, "champion")
    assert by_alias.version == "1" and by_alias.run_id == run_id
    assert client.get_model_version(MODEL, "1").aliases == ["champion"]
    # Nothing is live yet, so the guarded alias points nowhere.
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, MODEL, GUARDED_ALIAS)
    return {"run_id": run_id, "experiment_id": experiment_id, "version": int(version.version)}


def release():
    # The guarded alias is the live version of that environment: read it, never set it.
    live = client.get_model_version_by_alias(MODEL, GUARDED_ALIAS)
    assert live.version == "1", live.version
    message = expect_error("PERMISSION_DENIED", client.set_registered_model_alias, MODEL, GUARDED_ALIAS, "1")
    assert "rollback" in message and "deploy" in message, message
    expect_error("PERMISSION_DENIED", client.delete_registered_model_alias, MODEL, GUARDED_ALIAS)
    model = client.get_registered_model(MODEL)
    assert model.description == "Fraud scoring"
    assert model.aliases == {"champion": "1", GUARDED_ALIAS: "1"}, model.aliases

    # A version without a digest is registered and visible, but not deployable until one is attached.
    bare = client.create_model_version(MODEL, "s3://models/fraud/2", description="no digest yet")
    assert bare.version == "2" and bare.run_id in ("", None), (bare.version, bare.run_id)
    # The fluent call registers a model in storage (the model exists, so only a version is made).
    fluent = mlflow.register_model("s3://models/fraud/3", MODEL)
    assert fluent.version == "3" and fluent.source == "s3://models/fraud/3", (fluent.version, fluent.source)

    client.set_model_version_tag(MODEL, "1", "reviewed_by", "risk-team")
    assert client.get_model_version(MODEL, "1").tags == {"modelgate.artifact_digest": DIGEST, "reviewed_by": "risk-team"}
    client.update_model_version(MODEL, "1", description="validated on holdout")
    found = client.search_model_versions(f"name='{MODEL}'")
    assert sorted(v.version for v in found) == ["1", "2", "3"], [v.version for v in found]
    first = next(v for v in found if v.version == "1")
    assert first.description == "validated on holdout"
    assert sorted(first.aliases) == sorted(["champion", GUARDED_ALIAS]), first.aliases
    assert [m.name for m in client.search_registered_models(f"name='{MODEL}'")] == [MODEL]

    run_id = first.run_id
    history = client.get_metric_history(run_id, "accuracy")
    assert len(history) == STEPS and history[-1].value == 0.5 + (STEPS - 1) / (2 * STEPS)

    # Bad input gets MLflow's error codes.
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_run, "0" * 32)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, MODEL, "99")
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version, MODEL, "one")
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, "no-such-model")

    client.delete_registered_model_alias(MODEL, "champion")
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, MODEL, "champion")
    return {"run_id": run_id, "versions": len(found)}


print(json.dumps(train() if PHASE == "train" else release()))
