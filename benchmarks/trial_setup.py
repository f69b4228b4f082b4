"""Per-trial set-up: seconds from ``run_trial`` being called to its first optimizer step starting.

That is what every trial pays before it learns anything (data, model build, optimizer, eval
data, loader start, first batch); ASHA's short trials pay it in full. Two workloads:

- ``digits``: the demo's data (1797 images, 32 px) and model (``test_resnet``);
- ``folder``: a generated folder of JPEGs (``--images``, default 4000, at 64 px), ``test_resnet``.

Each repetition runs in a fresh process and times two trials back to back: ``cold`` (the
process's first trial: it also decodes or scans the data) and ``warm`` (the next trial in the
same process, as when Ray reuses a trial's actor: data cached). The first step is found by
wrapping ``tunefleet.trainables._loop._step`` (the code under test is not changed): the clock
stops when it is first called, with the first batch in hand; the trial is stopped there.

    python benchmarks/trial_setup.py [--repeats 3] [--images 4000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import append, heading, in_fresh_process, median, parse_or_run_child
from _images import write_jpeg_folder


class _FirstStep(Exception):
    pass


def _time_to_first_step(recipe: dict[str, Any], data: dict[str, Any]) -> float:
    import tunefleet.trainables._loop as loop
    from tunefleet.spaces import DataSpec
    from tunefleet.trainables import TrialSettings, run_trial

    real_step = loop._step

    def first_step(*args: Any, **kwargs: Any) -> Any:
        raise _FirstStep(time.perf_counter())

    loop._step = first_step
    start = time.perf_counter()
    try:
        run_trial(recipe, TrialSettings(data=DataSpec(**data)), lambda metrics, ckpt: None)
    except _FirstStep as stop:
        return float(stop.args[0]) - start
    finally:
        loop._step = real_step
    raise RuntimeError("the trial ended without a training step")


def child(data: dict[str, Any]) -> None:
    """One repetition: two trials in this fresh process; prints one JSON line."""
    from tunefleet.spaces import resolve

    recipe = resolve({"model": "test_resnet", "batch_size": 64, "lr": 0.05})
    cold = _time_to_first_step(recipe, data)
    warm = _time_to_first_step(recipe, data)
    print(json.dumps({"cold": cold, "warm": warm}))


def _measure(data: dict[str, Any], repeats: int) -> dict[str, float]:
    runs = [in_fresh_process(__file__, data) for _ in range(repeats)]
    return {arm: median([r[arm] for r in runs]) for arm in ("cold", "warm")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=4000, help="JPEGs in the generated folder")
    parser.add_argument("--label", default="", help="names the code measured in the table (e.g. 'before')")
    parser.add_argument("--extra", default="{}", help="JSON merged into both workloads' data section")
    args = parse_or_run_child(parser, child)
    if args is None:
        return
    extra = json.loads(args.extra)
    with tempfile.TemporaryDirectory(prefix="tf-setup-") as tmp:
        root = write_jpeg_folder(Path(tmp) / "images", args.images, size=64, classes=10)
        workloads = {
            "digits": {"kind": "digits", "image_size": 32, **extra},
            "folder": {"kind": "imagefolder", "root": str(root), "image_size": 64, **extra},
        }
        rows = {name: _measure(data, args.repeats) for name, data in workloads.items()}
    for name, row in rows.items():
        print(json.dumps({"workload": name, "label": args.label, **row}))
    lines = [
        heading(
            f"per-trial set-up before the first training step{f' ({args.label})' if args.label else ''}",
            f"test_resnet, batch 64, median of {args.repeats} fresh processes; folder: {args.images} JPEGs at 64 px",
        ),
        "| workload | cold s (first trial in a process) | warm s (next trial, data cached) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {row['cold']:.2f} | {row['warm']:.2f} |" for name, row in rows.items()]
    append("\n".join(lines) + "\n", not args.no_write)


if __name__ == "__main__":
    main()
