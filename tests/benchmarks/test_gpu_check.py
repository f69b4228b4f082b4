"""``benchmarks/gpu_check.py`` in its CPU mode: every row the CPU can run runs, the GPU-only rows
say so, one table is printed and RESULTS.md is left alone, so the script cannot rot between the
sessions that have a GPU.

Run as ``make bench`` runs a script (``bench_script``, tests/benchmarks/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
CPU_ROWS = ["bare timm loop", "channels_last", "data path: pinned + prefetch", "ONNX serving latency"]
GPU_ONLY = ["amp bf16", "amp fp16 + GradScaler"]


@pytest.mark.slow  # a Ray search (the packed row) among its checks
def test_cpu_mode_runs_every_cpu_check_and_skips_the_gpu_ones(bench_script, tmp_path) -> None:
    # --cpu-pack: the packed search's code path (Ray Tune, both trials' reports) on CPUs too. On a
    # GPU it adds gpus_per_worker 0.5, the GPU id check, and requires the trials to overlap; here
    # each trains for under a second, less than a loaded machine can start one after the other.
    args = ("--mode", "cpu", "--cpu-pack", "--table-out", str(tmp_path / "table.md"))
    rows, out = bench_script("gpu_check.py", *args)
    by = {r["check"]: r for r in rows}
    assert [r["check"] for r in rows] == [
        "bare timm loop",
        "amp bf16",
        "amp fp16 + GradScaler",
        "channels_last",
        "data path: pinned + prefetch",
        "2 trials packed on 1 GPU",
        "ONNX serving latency",
    ]
    for name in CPU_ROWS:
        assert by[name]["result"] == "ok", by[name]
        assert by[name]["images_per_s"] > 0 and by[name]["gpu_busy_pct"] is None
    for name in GPU_ONLY:
        assert by[name]["result"] == "skipped: no GPU" and by[name]["images_per_s"] is None
    packed = by["2 trials packed on 1 GPU"]
    assert packed["result"] == "ok" and packed["images_per_s"] > 0 and "trained together" in packed["note"], packed
    # On a CPU the trial stays NCHW (tunefleet converts on CUDA only); the data path pins nothing.
    assert "logits rel. diff" in by["channels_last"]["note"]
    assert "pin_memory False" in by["data path: pinned + prefetch"]["setting"]
    assert "x timm loader" in by["data path: pinned + prefetch"]["note"]
    serving = by["ONNX serving latency"]["note"]  # on a CPU: no GPU latency is timed, none is claimed
    assert "latency_ms " in serving and "model_mb " in serving and "latency_gpu_ms" not in serving
    assert "| check | setting | images/s | GPU busy % | result | note |" in out
    assert "| amp bf16 |  | — | n/a | skipped: no GPU |  |" in out
    assert "GPU check, cpu mode" in out
    table = (tmp_path / "table.md").read_text()  # what gpu_device.sh brings back from a lent GPU machine
    assert table.startswith("### ") and table.strip() in out and table.count("\n| ") == 8


def test_the_device_scripts_parse() -> None:
    for script in ("gpu_device.sh", "device_bundle.sh"):
        checked = subprocess.run(["bash", "-n", str(BENCH / script)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_the_deadline_ends_the_check_running_then_and_skips_the_rest() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--mode", "cpu", "--deadline", "0.5", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,  # past the script's own hang limit (deadline + 60 s), which prints every stack
    )
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 1, proc.stderr[-6000:]
    assert len(rows) == 7 and "| check | setting |" in proc.stdout  # the table is printed all the same
    # Where the alarm rang (while the folder was written, or in a check) depends on the machine's
    # speed; from there on, every check the CPU could run is cut short or skipped.
    cpu_rows = [r for r in rows if r["check"] in CPU_ROWS]
    first = next(i for i, r in enumerate(cpu_rows) if r["result"] != "ok")
    assert cpu_rows[first]["result"] in ("FAIL", "skipped: deadline"), cpu_rows
    assert cpu_rows[first]["result"] == "skipped: deadline" or "past the --deadline" in cpu_rows[first]["note"]
    assert all(r["result"] == "skipped: deadline" for r in cpu_rows[first + 1 :]), cpu_rows


def test_the_deadline_raises_only_where_no_lock_can_be_left_taken() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from _deadline import _safe_point
    finally:
        sys.path.remove(str(BENCH))

    def frame_in(module: str) -> Any:  # a frame whose code belongs to ``module``, called from here
        scope: dict[str, Any] = {"__name__": module, "sys": sys}
        exec("def here():\n    return sys._getframe()", scope)
        return scope["here"]()

    assert _safe_point(sys._getframe()) and _safe_point(frame_in("timm.models.resnet"))
    for module in ("torch.utils.data.dataloader", "multiprocessing.queues", "threading", "importlib._bootstrap"):
        assert not _safe_point(frame_in(module)), module
