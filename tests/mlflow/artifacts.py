"""Run artifacts through the real, unmodified `mlflow` client: log_text, log_dict, log_figure and
log_artifact (a 0-byte file, a unicode name, a 3 MiB binary) go up through the artifact proxy and come back
byte-identical. Prints one JSON line: the run and the sha256 of every file it uploaded.
"""

import hashlib
import io
import json
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
from mlflow import MlflowClient

EXPERIMENT = sys.argv[1]
client = MlflowClient()
# Files from 1 MiB on ask for the proxy's multipart upload first, as a client set up for large
# files does; the server declines in MLflow's words and the client streams them in one PUT.
os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "true"
os.environ["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = str(1 << 20)

mlflow.set_experiment(EXPERIMENT)
uploaded = {}
with tempfile.TemporaryDirectory() as local, mlflow.start_run() as run:
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    mlflow.log_text("hello, artifacts\n", "notes/readme.txt")
    uploaded["notes/readme.txt"] = b"hello, artifacts\n"
    mlflow.log_dict({"features": ["amount", "merchant"], "threshold": 0.7}, "config.json")
    figure, axes = plt.subplots()
    axes.plot([0, 1, 2], [0.2, 0.6, 0.9])
    mlflow.log_figure(figure, "plots/curve.png")
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png")
    uploaded["plots/curve.png"] = rendered.getvalue()
    files = {
        "empty.bin": b"",
        "données-графики.txt": "unicode name\n".encode(),
        "weights.bin": os.urandom(3 * 1024 * 1024 + 17),
    }
    for name, data in files.items():
        path = os.path.join(local, name)
        with open(path, "wb") as f:
            f.write(data)
        mlflow.log_artifact(path, artifact_path="model")
        uploaded[f"model/{name}"] = data

    top = sorted((f.path, f.is_dir) for f in client.list_artifacts(run.info.run_id))
    assert top == [("config.json", False), ("model", True), ("notes", True), ("plots", True)], top
    # Straight through the artifact repository: the runs:/ listing of a subdirectory also looks for
    # a logged model of that name.
    listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{run.info.artifact_uri}/model")
    inside = {f.path: f.file_size for f in listed}
    assert inside == {f"model/{n}": len(d) for n, d in files.items()}, inside

    back = mlflow.artifacts.download_artifacts(artifact_uri=run.info.artifact_uri, dst_path=os.path.join(local, "back"))
    for rel, data in uploaded.items():
        with open(os.path.join(back, rel), "rb") as f:
            assert f.read() == data, f"{rel} came back different"
    with open(os.path.join(back, "config.json")) as f:
        assert json.load(f) == {"features": ["amount", "merchant"], "threshold": 0.7}
    with open(os.path.join(back, "config.json"), "rb") as f:
        uploaded["config.json"] = f.read()

print(json.dumps({
    "run_id": run.info.run_id,
    "experiment_id": run.info.experiment_id,
    "sha256": {rel: hashlib.sha256(data).hexdigest() for rel, data in uploaded.items()},
}))
