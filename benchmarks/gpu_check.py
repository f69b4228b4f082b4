"""tunefleet's GPU paths vs a bare timm loop (resnet50, 224 px, generated JPEGs) in one table (issue
22): AMP bf16 and fp16 (its GradScaler stepping), ``channels_last``, the data path (pinned memory,
prefetch), two trials packed on one GPU, and (issue 24) a trial's ONNX serving latency on the GPU;
images/s and GPU busy % each, within ``--deadline`` (450 s).
``--mode cpu`` (default without CUDA) runs it all at tiny sizes in seconds, GPU-only rows skipped, so
CI keeps it working; only ``--mode gpu`` appends to RESULTS.md. Exit 1: a row failed or was cut.

    python benchmarks/gpu_check.py [--mode gpu|cpu] [--images N] [--cpu-pack] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import timm
import torch
from _common import append, heading, median, quiet_ray, recorder
from _deadline import OverTime, run_check, start_deadline, stop_deadline
from _images import write_jpeg_folder
from timm.data import create_dataset, create_loader, resolve_data_config

import tunefleet.trainables as tt
import tunefleet.trainables._loop as loop
from tunefleet.spaces import DataSpec, Resources, SearchSettings, resolve, spec_from_dict

LR, CLASSES, AUG, MIN_RATIO = 0.05, 10, {"hflip": True, "scale_min": 0.6, "re_prob": 0.25}, 0.8
Window = tuple[float, float]  # a measured epoch's (start, end) in perf_counter seconds
Outcome = tuple[str, float | None, float | None, list[str], str]  # setting, images/s, busy %, problems, note


class Ctx:
    def __init__(self, gpu: bool, sizes: tuple[Any, ...], root: Path, deadline: float) -> None:
        # sizes: model, px, training JPEGs, batch, epochs, cpus (a trial's threads, cpus - 1 loader workers; <= 16)
        self.model, self.size, self.train, self.batch, self.epochs, self.cpus = sizes
        self.gpu, self.root, self.deadline, self.dev = gpu, root, deadline, torch.device("cuda" if gpu else "cpu")
        self.samples: list[tuple[float, float]] = []  # (time, GPU busy %)
        self.rates: dict[str, float] = {}  # the bare loop's and timm's loader's images/s
        self.trial: tuple[float, list[Window], dict[str, Any]] | None = None  # channels_last reuses the first
        self.data = DataSpec(kind="imagefolder", root=str(root), image_size=self.size, cache="stream")  # as timm
        self.workers = tt.loader_workers(self.data, Resources(cpus_per_worker=self.cpus))
        aug = {f"augmentation.{k}": v for k, v in AUG.items()}  # one trial's sampled values:
        self.flat = {"model": self.model, "batch_size": self.batch, "lr": LR, "optimizer": "sgd", **aug}

    def sample(self) -> None:
        """GPU 0's busy % every 0.2 s: torch's reader needs pynvml (a CUDA torch may lack it), else nvidia-smi."""
        smi = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        for read in (lambda: float(torch.cuda.utilization(0)), lambda: float(subprocess.check_output(smi, timeout=5))):
            read_once = False
            while self.gpu:  # until the process ends (a daemon thread)
                try:
                    self.samples.append((time.perf_counter(), read()))
                    read_once = True
                except Exception:
                    if not read_once:
                        break  # this reader does not work here: the next one
                time.sleep(0.2)  # a reader that worked before skips a failed read

    def busy(self, windows: list[Window]) -> float | None:
        xs = [u for t, u in self.samples if any(a <= t <= b for a, b in windows)]
        return sum(xs) / len(xs) if xs else None

    def ratio(self, rate: float, ref: str, problems: list[str] | None = None) -> str:
        # Judged in GPU mode only: tiny CPU runs on a shared machine are too noisy for it.
        if problems is not None and self.gpu and not rate / self.rates[ref] >= MIN_RATIO:
            problems.append(f"below {MIN_RATIO:g}x {ref}")
        return f"{rate / self.rates[ref]:.2f}x {ref}"


def _epochs(ctx: Ctx, batches: Callable[[int], Iterable[Any]], step: Callable[..., Any]) -> tuple[float, list[Window]]:
    rates, windows = [], []
    for epoch in range(1, ctx.epochs + 1):
        seen, start = 0, time.perf_counter()
        for x, y in batches(epoch):
            step(x, y)
            seen += len(x)
            if time.perf_counter() > ctx.deadline:  # a loop that mostly waits in its loader's queue
                raise OverTime("past the --deadline")  # gives the alarm few safe points: here is one
        if ctx.gpu:
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - start))
        windows.append((start, time.perf_counter()))
    return median(rates[1:]), windows[1:]  # epoch 1 starts the workers, and CUDA picks its kernels


def check_bare(ctx: Ctx) -> Outcome:
    torch.set_num_threads(ctx.cpus)
    model = timm.create_model(ctx.model, num_classes=CLASSES).to(ctx.dev).train()
    model, cl = model.to(memory_format=torch.channels_last) if ctx.gpu else model, torch.channels_last
    config = resolve_data_config({"input_size": (3, ctx.size, ctx.size)}, model=model)
    loader = create_loader(
        create_dataset("", root=str(ctx.root / "train")), input_size=config["input_size"], batch_size=ctx.batch,
        is_training=True, use_prefetcher=True, device=ctx.dev, pin_memory=ctx.gpu, scale=(AUG["scale_min"], 1.0),
        hflip=0.5, re_prob=AUG["re_prob"], re_mode="pixel", interpolation="bilinear", mean=config["mean"],
        std=config["std"], num_workers=ctx.workers, persistent_workers=True, color_jitter=cast(Any, None),
    )  # fmt: skip
    optimizer, criterion = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9), torch.nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(ctx.dev.type, dtype=torch.bfloat16, enabled=ctx.gpu):
            loss = criterion(model(x.contiguous(memory_format=cl) if ctx.gpu else x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    ctx.rates["the bare loop"], windows = _epochs(ctx, lambda epoch: loader, step)
    ctx.rates["timm loader"] = _epochs(ctx, lambda epoch: loader, lambda x, y: None)[0]  # for the data path
    amp = "bf16, channels_last" if ctx.gpu else "fp32"
    setting = f"{ctx.model} {ctx.size} px, batch {ctx.batch}, {ctx.workers} workers, {amp}"
    note = f"timm create_loader + SGD; its loader alone {ctx.rates['timm loader']:.0f} images/s"
    return setting, ctx.rates["the bare loop"], ctx.busy(windows), [], note


def _trial(ctx: Ctx, amp: str) -> tuple[float, list[Window], dict[str, Any]]:
    """``run_trial`` here, its ``_step`` wrapped to see what it is handed; the code under test is unchanged."""
    seen: dict[str, Any] = {"steps": 0, "epochs": {}}
    real = loop._step

    def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:  # the first conv's layouts, dtype
        layouts = [t.is_contiguous(memory_format=torch.channels_last) for t in (inputs[0], module.weight)]
        seen.setdefault("conv", (*layouts, str(output.dtype).removeprefix("torch.")))

    def watched(parts: loop.TrainParts, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        if "parts" not in seen:  # the scaler's initial scale is read before its first step
            seen["parts"], scaler = parts, parts.precision.scaler
            seen["scale"] = scaler.get_scale() if scaler is not None else 0.0
            next(m for m in parts.model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(hook)
        window = seen["epochs"].setdefault(epoch, [time.perf_counter(), 0.0])
        out = real(parts, x, y, epoch, step)
        window[1], seen["steps"] = time.perf_counter(), seen["steps"] + 1
        return out

    # TrialSettings.amp is typed for the spec's values; Precision.create also takes bf16 and fp16.
    search, resources = SearchSettings(max_epochs=ctx.epochs, grace_period=1), Resources(cpus_per_worker=ctx.cpus)
    settings = tt.TrialSettings(ctx.data, search, resources, device=ctx.dev.type, amp=cast(Any, amp))
    reports: list[dict[str, float]] = []
    loop._step = watched
    try:
        tt.run_trial(resolve(ctx.flat), settings, lambda metrics, checkpoint: reports.append(metrics))
    finally:
        loop._step = real
    windows = [(w[0], w[1]) for epoch, w in seen["epochs"].items() if epoch > 1]
    result = (median([m["images_per_s"] for m in reports[1:]]), windows, seen)
    ctx.trial = ctx.trial or result
    return result


def check_amp(ctx: Ctx, amp: str) -> Outcome:
    rate, windows, seen = _trial(ctx, amp)
    problems: list[str] = []
    notes, dtype, scaler = [ctx.ratio(rate, "the bare loop", problems)], seen["conv"][2], seen["parts"].precision.scaler
    if dtype != {"bf16": "bfloat16", "fp16": "float16"}[amp]:
        problems.append(f"first conv ran in {dtype}")
    if amp == "fp16":
        # A step skipped (inf/NaN gradients) halves the scale; it grows only every growth_interval steps.
        steps, final = seen["steps"], scaler.get_scale() if scaler is not None else math.nan  # nan: no scaler
        skipped = max(0, round(math.log2(seen["scale"] / final))) if 0 < final < math.inf else steps
        if scaler is None or not (steps - skipped > 0 and steps < scaler.get_growth_interval()):
            problems.append("no GradScaler step")
        notes.append(f"scale {seen['scale']:g} -> {final:g}, {steps - skipped}/{steps} steps taken")
    return f"run_trial, Precision {amp}, first conv in {dtype}", rate, ctx.busy(windows), problems, "; ".join(notes)


def check_channels_last(ctx: Ctx) -> Outcome:
    rate, windows, seen = ctx.trial or _trial(ctx, "auto")
    problems, cl = [], torch.channels_last
    if seen["conv"][:2] != (ctx.gpu, ctx.gpu):  # tunefleet converts on CUDA only
        problems.append(f"trial's first conv: channels_last input, weight {seen['conv'][:2]}")
    model = tt.build_model(resolve(ctx.flat), CLASSES, 3).to(ctx.dev).eval()
    x = torch.randn(4, 3, ctx.size, ctx.size, device=ctx.dev)
    with torch.no_grad():
        nchw, nhwc = model(x).float(), model.to(memory_format=cl)(x.contiguous(memory_format=cl)).float()
    diff = float((nchw - nhwc).abs().max() / nchw.abs().max().clamp_min(1e-12))
    if not diff < 1e-2:  # TF32 convolutions may pick other kernels per layout: close, not equal
        problems.append(f"layouts disagree by {diff:.1e}")
    return "trial; build_model in both layouts", rate, ctx.busy(windows), problems, f"logits rel. diff {diff:.1e}"


def check_data_path(ctx: Ctx) -> Outcome:
    data, devices, recipe = tt.open_data(ctx.data)[0], set(), resolve(ctx.flat)
    mean, std = tt.normalization(tt.build_model(recipe, data.num_classes, data.in_chans), data.in_chans)
    transforms = tt.create_transforms(recipe, ctx.size, data.in_chans, mean, std)
    feed = tt.DataFeed(data, transforms, ctx.dev, workers=ctx.workers, seed=0)
    pinned, side_stream = bool(getattr(feed.counted.loader, "pin_memory", False)), bool(feed.prefetch.is_cuda)
    try:
        rate, windows = _epochs(ctx, lambda e: feed.train(e, ctx.batch, False), lambda x, y: devices.add(x.device.type))
    finally:
        feed.close()
    problems = [] if devices == {ctx.dev.type} else [f"batches on {devices}"]
    if (pinned, side_stream) != (ctx.gpu, ctx.gpu):
        problems.append(f"pin_memory {pinned}, side-stream prefetch {side_stream}")
    note = f"{ctx.ratio(rate, 'timm loader', problems)}; {ctx.ratio(rate, 'the bare loop')} (< 1: it is data-bound)"
    setting = f"DataFeed alone, {ctx.workers} workers, pin_memory {pinned}, prefetch stream {side_stream}"
    return setting, rate, ctx.busy(windows), problems, note


def check_packed(ctx: Ctx) -> Outcome:
    from tunefleet.search import run_experiment

    gpus, cpus = 0.5 if ctx.gpu else 0.0, max(1, ctx.cpus // 2)
    space = {k: v for k, v in ctx.flat.items() if "." not in k} | {"augmentation": AUG}
    search = {"searcher": "random", "scheduler": "fifo", "num_samples": 2, "max_concurrent": 2, "max_failures": 0}
    # The time budget ends running and pending trials alike (run_experiment keeps it; trial_timeout
    # is the CLI driver's watchdog), leaving time to stop Ray and print the table before the deadline.
    search |= {"max_epochs": ctx.epochs, "time_budget": max(30.0, ctx.deadline - time.perf_counter() - 30.0)}
    doc = {"name": "gpu-check-packed", "data": ctx.data.model_dump(exclude_defaults=True), "space": space}
    doc |= {"search": search, "resources": {"cpus_per_worker": cpus, "gpus_per_worker": gpus}}
    quiet_ray()
    import ray

    if ctx.gpu and ray.cluster_resources().get("GPU", 0.0) < 1.0:  # both trials would wait forever
        return "run_experiment: 2 trials x 0.5 GPU", None, None, [f"Ray sees no GPU: {ray.cluster_resources()}"], ""
    rec, problems = recorder(), []
    rec.on_trial_error = lambda trials, trial, **info: problems.append(str(trial.get_error())[-200:])
    with tempfile.TemporaryDirectory(prefix="tf-packed-") as tmp:
        run_experiment(spec_from_dict(doc), [rec], Path(tmp) / "runs", 2)
    by = {trial: [r for r in rec.rows if r["trial"] == trial] for trial in {r["trial"] for r in rec.rows}}
    # A trial trains from its first epoch's start (its first report less that epoch) to its last report.
    spans = [(rows[0]["t"] - rows[0]["epoch_time_s"], rows[-1]["t"]) for rows in by.values()] or [(0.0, 0.0)]
    together, ids = (max(b for b, _ in spans), min(e for _, e in spans)), sorted({r["gpu_ids"] for r in rec.rows})
    overlap = together[1] > together[0]
    # On a GPU an epoch of the check's folder takes seconds: the two trials must overlap. On CPUs
    # (CI's short mode) each trains for under a second, less than one trial process's start can
    # lag the other's on a loaded machine: there, the Ray Tune path is what is checked.
    if len(by) != 2 or (ctx.gpu and not overlap):  # a failed trial's error is in problems already
        problems.append(f"{len(by)} trials reported" + ("" if overlap else ", not training at the same time"))
    if ctx.gpu and not (len(ids) == 1 and ids[0].isdigit()):  # both on one GPU, the same one
        problems.append(f"GPU ids {ids}")
    rate = sum(median([r["images_per_s"] for r in v[1:]]) for v in by.values()) if by else None
    shared = f"{together[1] - together[0]:.0f} s" if overlap else "0 s (one after the other)"
    note = f"trained together {shared}; GPU ids {ids}; images/s of both summed"
    return f"run_experiment: 2 trials x ({cpus} CPUs, {gpus:g} GPU)", rate, ctx.busy([together]), problems, note


def check_serving(ctx: Ctx) -> Outcome:
    """A trial's serving cost (issue 24): its ONNX export timed in onnxruntime, on the GPU too."""
    gpu = 0 if ctx.gpu and tt.gpu_serving_available() else None
    model = timm.create_model(ctx.model, pretrained=False, num_classes=CLASSES)
    cost = tt.serving_cost(model, 3, ctx.size, ctx.batch, ctx.cpus, gpu)
    note = ", ".join(f"{k} {v:.2f}" for k, v in cost.items())
    if ctx.gpu and gpu is None:
        note += "; no GPU latency: onnxruntime here has no CUDA provider (onnxruntime-gpu)"
    batch_ms = cost["latency_ms_batch" if gpu is None else "latency_gpu_ms_batch"]
    return f"serving_cost, batch 1 and {ctx.batch}", 1000 * ctx.batch / batch_ms, None, [], note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["gpu", "cpu"], help="default: gpu where CUDA is available, else cpu")
    parser.add_argument("--images", type=int, help="training JPEGs (gpu 8192, cpu 160)")
    parser.add_argument("--deadline", type=float, default=450.0, help="seconds for the whole run")
    parser.add_argument("--cpu-pack", action="store_true", help="cpu: run the packed search on CPUs too (slower)")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not append to RESULTS.md")
    parser.add_argument("--table-out", type=Path, help="also write the table to this file (gpu_device.sh)")
    args, start = parser.parse_args(), time.perf_counter()
    gpu = (args.mode or ("gpu" if torch.cuda.is_available() else "cpu")) == "gpu"
    if gpu and not torch.cuda.is_available():
        parser.error("--mode gpu needs CUDA")
    gpu_sizes = ("resnet50", 224, args.images or 8192, 128, 3, min(len(os.sched_getaffinity(0)), 16))
    sizes = gpu_sizes if gpu else ("test_resnet", 32, args.images or 160, 32, 2, 2)
    start_deadline(args.deadline)
    with tempfile.TemporaryDirectory(prefix="tf-gpu-check-") as tmp:
        ctx, no_gpu = Ctx(gpu, sizes, Path(tmp), start + args.deadline), "" if gpu else "skipped: no GPU"
        for seed, (split, n) in enumerate((("train", ctx.train), ("val", ctx.train // 8), ("test", ctx.train // 8))):
            write_jpeg_folder(ctx.root / split, n, size=ctx.size, classes=CLASSES, seed=seed)
        threading.Thread(target=ctx.sample, daemon=True).start()
        rows = [
            run_check(ctx, "bare timm loop", check_bare),
            run_check(ctx, "amp bf16", lambda c: check_amp(c, "bf16"), no_gpu),
            run_check(ctx, "amp fp16 + GradScaler", lambda c: check_amp(c, "fp16"), no_gpu),
            run_check(ctx, "channels_last", check_channels_last),
            run_check(ctx, "data path: pinned + prefetch", check_data_path),
            run_check(ctx, "2 trials packed on 1 GPU", check_packed, "" if args.cpu_pack else no_gpu),
            run_check(ctx, "ONNX serving latency", check_serving),
        ]
        stop_deadline()

    title = f"GPU check, {ctx.dev} mode: AMP, channels_last, data path, packing vs a bare timm loop"
    detail = f"{ctx.train} training JPEGs, epochs 2-{ctx.epochs} measured, {time.perf_counter() - start:.0f} s in all"
    lines = [heading(title, detail), "| check | setting | images/s | GPU busy % | result | note |"]
    lines.append("|---|---|---:|---:|---|---|")
    for r in rows:
        rate = "—" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        busy = "n/a" if r["gpu_busy_pct"] is None else f"{r['gpu_busy_pct']:.0f}"
        lines.append(f"| {r['check']} | {r['setting']} | {rate} | {busy} | {r['result']} | {r['note']} |")
    append("\n".join(lines) + "\n", gpu and not args.no_write)
    if args.table_out is not None:
        args.table_out.write_text("\n".join(lines) + "\n")
    raise SystemExit(1 if any(r["result"] == "FAIL" or "deadline" in r["result"] for r in rows) else 0)


if __name__ == "__main__":
    main()
