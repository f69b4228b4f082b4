"""The model zoo's cost columns: milliseconds per image of one training step on this machine's CPU.

``tunefleet fit`` plans a search from these numbers (``spaces/_zoo.py``): seconds per epoch =
training images x ms/img at the plan's image size. So the number measured is what a trial pays
per training image: forward + backward + an SGD step on a batch of 32 RGB images, 10 classes, in
``train()`` mode, with as many torch threads as a CPU trial gets (``resources.cpus_per_worker``:
1 by default), at two sizes: the reference (64 px) and the zoo's least (32 px), because small
images do not cost (size/64)^2 of the reference (fixed per-layer costs); the planner draws a line
through both in pixel count. Each model and size runs in a fresh process (nothing cached, no
other model's threads): two warm-up steps, then the median of ``--steps``. The pretrained
column is what ``timm.list_models(name, pretrained=True)`` says today.

    python benchmarks/zoo_cost.py [--models resnet18,efficientnet_b0] [--steps 5] [--threads 1] [--no-write]

Prints one JSON line per model, then a table (appended to RESULTS.md unless ``--no-write``) and
the figures to paste into ``spaces/_zoo.py`` (with the date and machine in a comment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from _common import append, heading, in_fresh_process, parse_or_run_child

from tunefleet.spaces import ZOO, ZOO_BATCH, ZOO_MIN_SIZE, ZOO_REFERENCE_SIZE


def child(job: dict[str, Any]) -> None:
    """Time one model's training steps in this fresh process; prints one JSON line."""
    import timm
    import torch

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    name, size, batch = job["model"], job["size"], job["batch"]
    model = timm.create_model(name, pretrained=False, num_classes=10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    times = []
    for step in range(job["steps"] + 2):  # two warm-up steps (allocator, kernels chosen)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    ms_per_img = 1000 * statistics.median(times) / batch
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    pretrained = bool(timm.list_models(name, pretrained=True))
    print(json.dumps({"model": name, "cpu_ms_per_img": ms_per_img, "params_m": params_m, "pretrained": pretrained}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ZOO), help="comma-separated timm names [default: the zoo]")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (after two warm-up steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, as a CPU trial gets")
    args = parse_or_run_child(parser, child)
    if args is None:
        return
    rows = []
    for name in args.models.split(","):
        row: dict[str, Any] = {"model": name}
        for key, size in (("ms_small", ZOO_MIN_SIZE), ("ms_ref", ZOO_REFERENCE_SIZE)):
            job = {"model": name, "size": size, "batch": ZOO_BATCH, "steps": args.steps, "threads": args.threads}
            measured = in_fresh_process(__file__, job)
            row |= {
                key: measured["cpu_ms_per_img"],
                "params_m": measured["params_m"],
                "pretrained": measured["pretrained"],
            }
        print(json.dumps(row), flush=True)
        rows.append(row)
    detail = f"batch {ZOO_BATCH}, {args.threads} torch thread(s), median of {args.steps} steps, fresh process per cell"
    lines = [heading("model zoo cost (`python benchmarks/zoo_cost.py`)", detail)]
    lines += [
        f"| model | params (M) | CPU ms/img at {ZOO_MIN_SIZE} px | CPU ms/img at {ZOO_REFERENCE_SIZE} px "
        "| ratio (1/4 if it scaled with pixels) | timm pretrained |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['model']} | {r['params_m']:.1f} | {r['ms_small']:.2f} | {r['ms_ref']:.2f} "
        f"| {r['ms_small'] / r['ms_ref']:.2f} | {r['pretrained']} |"
        for r in rows
    ]
    append("\n".join(lines) + "\n", not args.no_write)
    print("figures for spaces/_zoo.py (name, cpu_ms_per_img, cpu_ms_per_img_small):")
    for r in rows:
        print(f"    {r['model']!r}: {r['ms_ref']:.2f}, {r['ms_small']:.2f}")


if __name__ == "__main__":
    main()
