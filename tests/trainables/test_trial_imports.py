"""What each process of a trial imports: the search driver hands Tune the trainable without torch
or timm, and a multi-worker trial's Tune process (which only starts Ray Train) without timm or
the training loop; its Train workers import those."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
{setup}
print(json.dumps(sorted(m for m in ("torch", "timm", "tunefleet.trainables._trial") if m in sys.modules)))
"""


def _imported(setup: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_driver_hands_tune_the_trainable_without_torch_or_timm():
    assert _imported("from tunefleet.trainables import tune_trainable") == []


def test_a_ddp_trials_tune_process_imports_ray_train_but_not_timm_or_the_loop():
    # What run_ddp_trial imports before it starts the TorchTrainer (Ray Train's torch backend
    # imports torch itself); the loop's function reaches the workers by reference.
    setup = (
        "from tunefleet.trainables._ddp import _worker_loop, run_ddp_trial\n"
        "from ray.train.torch import TorchConfig, TorchTrainer\n"
        "from ray.tune.integration.ray_train import TuneReportCallback\n"
        "import pickle; pickle.dumps(_worker_loop)"
    )
    assert _imported(setup) == ["torch"]
