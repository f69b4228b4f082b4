"""The data paths against a bare timm training loop: throughput, and memory as the dataset grows.

``throughput``: a generated JPEG folder (``root/train|val|test/<class>``). Three arms train on
``train/``, each in a fresh process, alternating over ``--repeats`` rounds:

- ``timm``: a bare loop written here: ``timm.data.create_dataset`` + ``create_loader`` (timm's
  prefetcher, persistent workers), ``timm.create_model``, SGD, cross-entropy;
- ``memory`` and ``stream``: tunefleet's ``run_trial`` with ``data.cache`` forced.

Same model, batch size, augmentation (random-resized crop, flips, random erasing), loader
workers and torch threads. Images/s is counted over the training steps of epochs 2.. (epoch 1
starts the workers); the ratio is taken per round. Target (issue 13): >= 0.95x for both paths.

``memory``: ``run_trial`` streaming a generated folder of ``--images`` JPEGs at 128 px, then
one twice as large, each for one epoch (train, val, test). A thread samples the RSS of the
trial's process and its loader workers; the peaks are compared. Target: < 10 % apart.

    python benchmarks/data_paths.py throughput [--images 3000] [--model resnet18] [--repeats 3]
    python benchmarks/data_paths.py memory [--images 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import PeakRss, append, heading, in_fresh_process, median, parse_or_run_child, rss_change_line, verdict
from _images import write_jpeg_folder

SCALE_MIN, RE_PROB, LR = 0.6, 0.25, 0.05


def _bare_timm(arm: dict[str, Any]) -> list[float]:
    """The yardstick: the training loop a user would write with timm alone."""
    import timm
    import torch
    from timm.data import create_dataset, create_loader, resolve_data_config

    torch.manual_seed(0)
    torch.set_num_threads(arm["threads"])
    dataset = create_dataset("", root=str(Path(arm["root"]) / "train"))
    model = timm.create_model(arm["model"], num_classes=arm["classes"])
    config = resolve_data_config({"input_size": (3, arm["size"], arm["size"])}, model=model)
    loader = create_loader(
        dataset,
        input_size=config["input_size"],
        batch_size=arm["batch"],
        is_training=True,
        use_prefetcher=True,
        device=torch.device("cpu"),
        scale=(SCALE_MIN, 1.0),
        hflip=0.5,
        color_jitter=None,  # type: ignore[arg-type]
        re_prob=RE_PROB,
        re_mode="pixel",
        interpolation="bilinear",
        mean=config["mean"],
        std=config["std"],
        num_workers=arm["workers"],
        persistent_workers=True,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(arm["epochs"]):
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def _tunefleet(arm: dict[str, Any], cache: str) -> list[float]:
    from tunefleet.spaces import DataSpec, Resources, SearchSettings, resolve
    from tunefleet.trainables import TrialSettings, run_trial

    recipe = resolve(
        {
            "model": arm["model"],
            "batch_size": arm["batch"],
            "lr": LR,
            "optimizer": "sgd",
            "augmentation.hflip": True,
            "augmentation.scale_min": SCALE_MIN,
            "augmentation.re_prob": RE_PROB,
        }
    )
    data = DataSpec(
        kind="imagefolder", root=arm["root"], image_size=arm["size"], cache=cache, loader_workers=arm["workers"]
    )
    settings = TrialSettings(
        data=data,
        resources=Resources(cpus_per_worker=arm["threads"]),
        search=SearchSettings(max_epochs=arm["epochs"], grace_period=1),
    )
    reports: list[dict[str, float]] = []
    run_trial(recipe, settings, lambda metrics, checkpoint: reports.append(metrics))
    return [m["images_per_s"] for m in reports]


def _memory_arm(arm: dict[str, Any]) -> dict[str, float]:
    from tunefleet.spaces import DataSpec, Resources, SearchSettings, resolve
    from tunefleet.trainables import TrialSettings, run_trial

    recipe = resolve({"model": "test_resnet", "batch_size": 64, "lr": LR, "augmentation.hflip": True})
    data = DataSpec(kind="imagefolder", root=arm["root"], image_size=128, cache=arm["cache"])
    settings = TrialSettings(
        data=data, resources=Resources(cpus_per_worker=2), search=SearchSettings(max_epochs=1, grace_period=1)
    )
    peak = PeakRss()
    start = time.perf_counter()
    reports: list[dict[str, float]] = []
    run_trial(recipe, settings, lambda metrics, checkpoint: reports.append(metrics))
    return {**peak.stop(), "seconds": time.perf_counter() - start, "images_per_s": reports[-1]["images_per_s"]}


def child(arm: dict[str, Any]) -> None:
    if arm["kind"] == "memory":
        print(json.dumps(_memory_arm(arm)))
        return
    rates = _bare_timm(arm) if arm["arm"] == "timm" else _tunefleet(arm, arm["arm"])
    print(json.dumps({"rates": rates}))


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-thru-") as tmp:
        root = Path(tmp) / "images"
        for seed, (split, share) in enumerate((("train", 0.6), ("val", 0.2), ("test", 0.2))):
            write_jpeg_folder(root / split, int(args.images * share), size=args.size, classes=10, seed=seed)
        base = {"kind": "throughput", "root": str(root), "model": args.model, "size": args.size, "classes": 10}
        base |= {"batch": args.batch, "workers": args.workers, "threads": args.threads, "epochs": args.epochs}
        rounds: list[dict[str, float]] = []
        for _ in range(args.repeats):
            row = {}
            for arm in ("timm", "memory", "stream"):
                rates = in_fresh_process(__file__, {**base, "arm": arm})["rates"][1:]  # epoch 1 starts the workers
                row[arm] = median(rates)
            rounds.append(row)
            print(json.dumps(row), flush=True)
    ratios = {arm: median([r[arm] / r["timm"] for r in rounds]) for arm in ("memory", "stream")}
    lines = [
        heading(
            "trial throughput vs a bare timm loop (CPU)",
            f"{args.model} at {args.size} px, batch {args.batch}, {args.workers} loader worker(s), "
            f"{args.threads} torch threads, {int(args.images * 0.6)} training JPEGs, epochs 2-{args.epochs} of each "
            f"run, {args.repeats} rounds",
        ),
        "| round | bare timm img/s | memory img/s | stream img/s | memory / timm | stream / timm |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r['timm']:.1f} | {r['memory']:.1f} | {r['stream']:.1f} | "
            f"{r['memory'] / r['timm']:.3f} | {r['stream'] / r['timm']:.3f} |"
        )
    lines.append(
        f"\ntarget >= 0.95x: memory {ratios['memory']:.3f} {verdict(ratios['memory'] >= 0.95)}, "
        f"stream {ratios['stream']:.3f} {verdict(ratios['stream'] >= 0.95)} (median of per-round ratios)"
    )
    append("\n".join(lines) + "\n", not args.no_write)


def memory(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tf-rss-") as tmp:
        for n in (args.images, 2 * args.images):
            root = write_jpeg_folder(Path(tmp) / f"images-{n}", n, size=128, classes=10)
            for cache in ("stream", "memory") if n == args.images and args.contrast else ("stream",):
                row = {
                    "images": n,
                    "cache": cache,
                    **in_fresh_process(__file__, {"kind": "memory", "root": str(root), "cache": cache}),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    small, large = (r for r in rows if r["cache"] == "stream")
    lines = [
        heading(
            "peak memory of a streaming trial vs dataset size",
            "test_resnet at 128 px, batch 64, 1 epoch (train, val, test), 2 CPUs (1 loader worker); RSS of the "
            "trial's process + its loader workers, sampled every 0.1 s",
        ),
        "| images | data.cache | peak RSS, trial process MiB | peak RSS, with workers MiB | trial s | train img/s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['images']} | {r['cache']} | {r['peak_main_mib']:.0f} | {r['peak_total_mib']:.0f} | "
        f"{r['seconds']:.0f} | {r['images_per_s']:.0f} |"
        for r in rows
    ]
    lines.append(rss_change_line(small, large))
    append("\n".join(lines) + "\n", not args.no_write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["throughput", "memory"])
    parser.add_argument("--images", type=int, help="JPEGs in the folder (throughput: 3000; memory: 20000)")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="loader workers (a 2-CPU trial gets 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contrast", action="store_true", help="memory: also the memory path, at the smaller size")
    args = parse_or_run_child(parser, child)
    if args is None:
        return
    if args.what == "memory":
        args.images = args.images or 20_000
        memory(args)
    else:
        args.images = args.images or 3000
        throughput(args)


if __name__ == "__main__":
    main()
