"""Models through the real, unmodified `mlflow` client and scikit-learn: MLflow's quickstart
(`log_model` with `registered_model_name`), a second model registered the same way, the first again
through `register_model("runs:/…")`, and serving code loading `models:/<name>@<alias>`.

Phases (the last line printed is JSON):
  train <model>           -> the runs, logged models and versions, with each model's digest as
                             recomputed here from the downloaded files (sha256sum's listing)
  predict <model> <alias> -> what `models:/<model>@<alias>` predicts for three iris rows
"""

import hashlib
import json
import os
import sys
import tempfile

import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

PHASE, MODEL = sys.argv[1], sys.argv[2]
X, y = load_iris(return_X_y=True)


def tree_digest(uri):
    """The digest Modelgate documents: sha256 over `<sha256>  <path>\\n` per file, sorted by path."""
    with tempfile.TemporaryDirectory() as local:
        root = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=local)
        lines = []
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    lines.append((os.path.relpath(path, root).encode(), hashlib.sha256(f.read()).hexdigest()))
        listing = b"".join(sha.encode() + b"  " + rel + b"\n" for rel, sha in sorted(lines))
        return "sha256:" + hashlib.sha256(listing).hexdigest(), len(lines)


if PHASE == "train":
    mlflow.set_experiment(f"{MODEL}-training")
    out = {}
    # MLflow's quickstart, unchanged but for the names.
    with mlflow.start_run() as run:
        params = {"solver": "lbfgs", "max_iter": 1000, "random_state": 8888}
        mlflow.log_params(params)
        lr = LogisticRegression(**params).fit(X, y)
        mlflow.log_metric("accuracy", lr.score(X, y))
        info = mlflow.sklearn.log_model(lr, name="model", registered_model_name=MODEL, input_example=X[:2])
    out["first"] = {"run_id": run.info.run_id, "model_id": info.model_id, "version": info.registered_model_version}
    # A model that always answers 2: what serving loads is visible in its predictions.
    with mlflow.start_run() as run:
        constant = DummyClassifier(strategy="constant", constant=2).fit(X, y)
        mlflow.log_metric("accuracy", constant.score(X, y))
        info = mlflow.sklearn.log_model(constant, name="model", registered_model_name=MODEL)
    out["second"] = {"run_id": run.info.run_id, "model_id": info.model_id, "version": info.registered_model_version}
    again = mlflow.register_model(f"runs:/{out['first']['run_id']}/model", MODEL)
    out["again"] = {"version": int(again.version), "source": again.source}
    for key in ["first", "second"]:
        # The logged model's own location: a `models:/` download adds a file of the client's own.
        digest, files = tree_digest(mlflow.get_logged_model(out[key]["model_id"]).artifact_location)
        out[key].update(digest=digest, files=files)
    print(json.dumps(out))
elif PHASE == "predict":
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@{sys.argv[3]}")
    print(json.dumps({"predictions": [int(p) for p in model.predict(X[:3])]}))
else:
    sys.exit(f"unknown phase {PHASE}")
