"""Artifact throughput through the real `mlflow` client (see `scripts/bench-mlflow.sh`): one file of
`--size-mb` MiB logged with `mlflow.log_artifact` and downloaded back with
`mlflow.artifacts.download_artifacts`, against Modelgate and against MLflow's own artifact proxy
(`mlflow server --serve-artifacts`), beside a plain `cp` of the same file on the same disk. While
Modelgate streams, its server's resident memory is sampled every 20 ms.

Usage: artifacts.py --modelgate URL --token TOKEN --pid PID --mlflow URL --dir DIR [--size-mb N]
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--modelgate", required=True)
parser.add_argument("--token", required=True)
parser.add_argument("--pid", type=int, required=True)
parser.add_argument("--mlflow", required=True)
parser.add_argument("--dir", required=True)
parser.add_argument("--size-mb", type=int, default=1024)
args = parser.parse_args()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Peak:
    """The highest resident memory of `pid` while the block runs, sampled every 20 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.running = pid, 0, True

    def __enter__(self):
        self.before = rss_kib(self.pid)
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()
        return self

    def sample(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *_):
        self.running = False
        self.thread.join()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


source = os.path.join(args.dir, "weights.bin")
with open(source, "wb") as f:
    for _ in range(args.size_mb):
        f.write(os.urandom(1 << 20))
expected = sha256(source)
size = os.path.getsize(source)

started = time.perf_counter()
subprocess.run(["cp", source, os.path.join(args.dir, "copy.bin")], check=True)
copy_seconds = time.perf_counter() - started
os.remove(os.path.join(args.dir, "copy.bin"))


def transfer(uri, token, pid=None):
    """Seconds to upload and to download the file through `uri`, and the server's memory growth."""
    mlflow.set_tracking_uri(uri)
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    mlflow.set_experiment(f"artifact-bench-{int(time.time())}")
    with mlflow.start_run() as run:
        peak = Peak(pid) if pid else None
        if peak:
            peak.__enter__()
        started = time.perf_counter()
        mlflow.log_artifact(source)
        up = time.perf_counter() - started
        with tempfile.TemporaryDirectory(dir=args.dir) as back:
            started = time.perf_counter()
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="weights.bin", dst_path=back)
            down = time.perf_counter() - started
            if peak:
                peak.__exit__()
            assert sha256(local) == expected, f"{uri}: the file came back different"
    growth = (peak.peak - peak.before) / 1024 if peak else None
    return up, down, growth


mg_up, mg_down, growth = transfer(args.modelgate, args.token, args.pid)
ml_up, ml_down, _ = transfer(args.mlflow, None)
os.remove(source)

mib = size / (1 << 20)
print(f"{'artifact, ' + str(args.size_mb) + ' MiB':<28} {'Modelgate':>16} {'MLflow proxy':>16} {'ratio':>7} {'cp':>14} {'÷ cp':>6}")
for what, ours, theirs in [("upload (log_artifact)", mg_up, ml_up), ("download", mg_down, ml_down)]:
    print(
        f"{what:<28} {ours:>7.2f} s {mib / ours:>4.0f} MiB/s {theirs:>7.2f} s {mib / theirs:>4.0f} MiB/s "
        f"{theirs / ours:>6.1f}× {copy_seconds:>6.2f} s {mib / copy_seconds:>4.0f}/s {ours / copy_seconds:>5.1f}×"
    )
print(f"Modelgate server RSS growth while streaming: {growth:.1f} MiB")
