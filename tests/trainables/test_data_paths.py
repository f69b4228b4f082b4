"""The two data paths (memory, stream) behind one loader, and the ready path that skips it for
in-memory splits: same results, exact resume, sharding,
batched evaluation, unreadable files counted, and the memory budget that picks between them."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tunefleet.spaces import GROUPS, DataSpec, Resources, SearchSettings, SpecError, resolve
from tunefleet.spaces.records import LAST, UNREADABLE
from tunefleet.trainables import (
    DataFeed,
    TrialSettings,
    create_transforms,
    load_logits,
    loader_workers,
    open_data,
    plan_data,
    read_meta,
    run_trial,
)
from tunefleet.trainables._feed import _Passes

# Every per-sample and per-batch random step on: crops, flips, noise, erasing.
RECIPE = resolve(
    {
        "lr": 0.05,
        "batch_size": 16,
        "augmentation.hflip": True,
        "augmentation.scale_min": 0.6,
        "augmentation.noise_std": 0.1,
        "augmentation.re_prob": 0.5,
    }
)


@pytest.fixture
def folder(tmp_path, image_folder) -> Path:
    return image_folder(tmp_path / "images", {"cat": 24, "dog": 24, "fox": 24})


def _settings(root: Path, epochs: int = 2, **data) -> TrialSettings:
    spec = DataSpec(kind="imagefolder", root=str(root), image_size=20, **data)
    return TrialSettings(data=spec, search=SearchSettings(max_epochs=epochs, grace_period=1))


def _run(settings: TrialSettings, keep: Path, resume_from: Path | None = None) -> list[dict[str, float]]:
    """Run a trial; every reported checkpoint directory is copied to ``keep/epoch-N``."""
    reports: list[dict[str, float]] = []

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        reports.append(metrics)
        if checkpoint_dir is not None:
            shutil.copytree(checkpoint_dir, keep / f"epoch-{int(metrics['epoch'])}")

    run_trial(RECIPE, settings, report, resume_from=resume_from)
    return reports


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / LAST / "model.safetensors"))


def _same_training(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    for key in ("train_loss", "val_loss", "val_acc"):
        assert [m[key] for m in a] == [m[key] for m in b], key


def test_stream_trains_exactly_as_memory_with_any_number_of_loader_workers(folder, tmp_path):
    memory = _run(_settings(folder, cache="memory", loader_workers=0), tmp_path / "memory")
    stream = _run(_settings(folder, cache="stream", loader_workers=2), tmp_path / "stream")
    assert read_meta(tmp_path / "memory/epoch-2" / LAST).data_cache == "memory"
    assert read_meta(tmp_path / "stream/epoch-2" / LAST).data_cache == "stream"
    _same_training(memory, stream)
    a, b = _weights(tmp_path / "memory/epoch-2"), _weights(tmp_path / "stream/epoch-2")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the saved logits for ensembling: the whole val and test splits, in split order
    logits = load_logits(tmp_path / "stream/epoch-1/best")
    data, _ = open_data(_settings(folder, cache="stream").data)
    assert logits["val_labels"].tolist() == data.val.labels.tolist()
    assert logits["test_labels"].tolist() == data.test.labels.tolist()


def test_streamed_trial_resumes_exactly(folder, tmp_path):
    settings = _settings(folder, epochs=3, cache="stream", loader_workers=1)
    straight = _run(settings, tmp_path / "straight")
    resumed = _run(settings, tmp_path / "resumed", resume_from=tmp_path / "straight/epoch-2")
    assert [int(m["epoch"]) for m in resumed] == [3]
    _same_training(straight[2:], resumed)
    a, b = _weights(tmp_path / "straight/epoch-3"), _weights(tmp_path / "resumed/epoch-3")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_files_while_streaming_are_skipped_and_counted(folder, tmp_path):
    # JPEGs cut just after the start of scan: headers read (so the listing keeps them), pixels not.
    broken = sorted(folder.rglob("*.jpg"))[:3]
    for path in broken:
        data = path.read_bytes()
        path.write_bytes(data[: data.index(b"\xff\xda") + 20])
    reports = _run(_settings(folder, epochs=2, cache="stream"), tmp_path / "stream")
    assert [int(m["epoch"]) for m in reports] == [1, 2]
    data, _ = open_data(_settings(folder, cache="stream").data)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    where = {s: sum(str(p) in split.files for p in broken) for s, split in splits.items()}
    assert sum(where.values()) == 3
    for m in reports:  # each epoch reads train and val once, test when val improved
        assert m[UNREADABLE] == where["train"] + where["val"] + (where["test"] if "test_acc" in m else 0)
    # the memory path leaves them out once, when decoding
    memory = _run(_settings(folder, epochs=1, cache="memory"), tmp_path / "memory")
    assert memory[0][UNREADABLE] == 0
    assert read_meta(tmp_path / "memory/epoch-1" / LAST).data_skipped == 3


def test_epochs_shard_disjointly_across_ranks_and_change_order_by_epoch():
    def train_keys(rank: int, epoch: int, world: int = 3) -> list[tuple[str, int, int | None]]:
        passes = _Passes(seed=7, rank=rank, world=world)
        passes.train(n=20, epoch=epoch, batch=4, drop_last=False)
        return [key for batch in passes for key in batch]

    shards = [train_keys(rank, epoch=1) for rank in range(3)]
    indices = [[i for _, i, _ in shard] for shard in shards]
    assert all(len(ix) == 6 for ix in indices)  # 20 // 3 each: equal steps on every rank
    assert len(set().union(*map(set, indices))) == 18
    seeds = [s for shard in shards for _, _, s in shard]
    assert len(set(seeds)) == len(seeds)  # every sample of every rank draws its own augmentation
    assert train_keys(0, epoch=1) == train_keys(0, epoch=1)
    assert indices[0] != [i for _, i, _ in train_keys(0, epoch=2)]


def test_evaluation_comes_in_batches_never_one_tensor_per_split(folder):
    data, _ = open_data(_settings(folder, cache="stream").data)
    transforms = create_transforms(RECIPE, 20, data.in_chans, (0.5,) * 3, (0.25,) * 3)
    feed = DataFeed(data, transforms, torch.device("cpu"), workers=1, seed=0)
    try:
        batches = list(feed.evaluate("val", batch=4))
        assert all(len(x) <= 4 for x, _ in batches) and sum(len(x) for x, _ in batches) == len(data.val)
        x = torch.cat([x for x, _ in batches])
        first = (np.asarray(data.val.image(0), dtype=np.float32) - 127.5) / 63.75  # normalized on the way
        assert torch.allclose(x[0], torch.from_numpy(first).permute(2, 0, 1), atol=1e-5)
        assert torch.equal(torch.cat([y for _, y in batches]), torch.from_numpy(data.val.labels))
    finally:
        feed.close()


def test_auto_picks_memory_within_the_budget_and_stream_above_it(folder):
    small = plan_data(DataSpec(kind="imagefolder", root=str(folder), image_size=20))
    assert (small.cache, small.images, small.decoded_bytes) == ("memory", 72, 72 * 20 * 20 * 3)
    tight = DataSpec(kind="imagefolder", root=str(folder), image_size=20, cache_budget_gb=50_000 / 2**30)
    assert plan_data(tight).cache == "stream"
    with pytest.raises(SpecError, match=r"data\.cache: memory needs about .* for 72 images at 20x20x3"):
        plan_data(tight.model_copy(update={"cache": "memory"}))
    assert plan_data(DataSpec(kind="digits", image_size=16)).cache == "memory"


def test_loader_workers_follow_the_cpus_a_worker_reserves():
    data = DataSpec()
    assert loader_workers(data, Resources(cpus_per_worker=1)) == 1
    assert loader_workers(data, Resources(cpus_per_worker=8)) == 7
    assert loader_workers(DataSpec(loader_workers=0), Resources(cpus_per_worker=8)) == 0


# No per-sample step (noise is per batch): in memory, every pass takes the ready path.
PLAIN = resolve({"lr": 0.05, "batch_size": 16, "augmentation.noise_std": 0.1})


def _passes(feed: DataFeed, epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every training batch of ``epochs`` epochs (noise off: it draws from the process's stream),
    then the val and test splits, as the feed gives them."""
    feed.augment.noise = None
    batches = [b for epoch in range(1, epochs + 1) for b in feed.train(epoch, batch=16, drop_last=False)]
    return batches + list(feed.evaluate("val", 8)) + list(feed.evaluate("test", 8))


@pytest.mark.parametrize("kind", ["digits", "imagefolder"])
def test_ready_path_gives_the_loaders_batches_byte_for_byte(kind, folder):
    spec = DataSpec(kind="digits", image_size=16) if kind == "digits" else _settings(folder).data
    data, plan = open_data(spec)
    assert plan.cache == "memory"
    transforms = create_transforms(PLAIN, spec.image_size, data.in_chans, (0.5,) * data.in_chans, (0.25,) * 3)
    ready = DataFeed(data, transforms, torch.device("cpu"), workers=1, seed=3, rank=1, world=2)
    loader = DataFeed(data, transforms, torch.device("cpu"), workers=1, seed=3, rank=1, world=2, ready=False)
    try:
        assert not ready.loader_needed and loader.loader_needed
        got, want = _passes(ready), _passes(loader)
        assert len(got) == len(want)
        for (x, y), (x0, y0) in zip(got, want, strict=True):
            assert x.dtype == x0.dtype and x.is_contiguous() and torch.equal(x, x0) and torch.equal(y, y0)
    finally:
        ready.close()
        loader.close()
    augmented = create_transforms(RECIPE, spec.image_size, data.in_chans, (0.5,) * 3, (0.25,) * 3)
    mixed = DataFeed(data, augmented, torch.device("cpu"), workers=0, seed=3)
    assert not mixed.ready_train and mixed.ready_splits == {"train", "val", "test"} and mixed.loader_needed


def test_a_trial_on_the_ready_path_trains_exactly_as_through_the_loader(folder, tmp_path):
    def run(cache: str, keep: Path) -> list[dict[str, float]]:
        reports: list[dict[str, float]] = []

        def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
            reports.append(metrics)
            if checkpoint_dir is not None:
                shutil.copytree(checkpoint_dir, keep / f"epoch-{int(metrics['epoch'])}")

        run_trial(PLAIN, _settings(folder, cache=cache, loader_workers=1), report)
        return reports

    ready, stream = run("memory", tmp_path / "ready"), run("stream", tmp_path / "stream")
    _same_training(ready, stream)
    a, b = _weights(tmp_path / "ready/epoch-2"), _weights(tmp_path / "stream/epoch-2")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_meta(tmp_path / "ready/epoch-2" / LAST).loader_workers == 0  # none started
    assert read_meta(tmp_path / "stream/epoch-2" / LAST).loader_workers == 1


def test_a_primed_epoch_keeps_its_batches_across_a_ready_evaluation(folder):
    data, _ = open_data(_settings(folder, cache="memory").data)
    transforms = create_transforms(RECIPE, 20, data.in_chans, (0.5,) * 3, (0.25,) * 3)
    primed = DataFeed(data, transforms, torch.device("cpu"), workers=1, seed=5)
    fresh = DataFeed(data, transforms, torch.device("cpu"), workers=1, seed=5)
    try:
        primed.prime(1, batch=16, drop_last=True)  # the loader starts on epoch 1 (augmented: not ready)
        assert len(list(primed.evaluate("val", 8))) == 2  # meanwhile a ready pass resets the keys
        primed.augment.noise = primed.augment.erasing = fresh.augment.noise = fresh.augment.erasing = None
        got, want = list(primed.train(1, 16, True)), list(fresh.train(1, 16, True))
        assert len(got) == len(want) == len(data.train) // 16
        assert all(torch.equal(x, x0) and torch.equal(y, y0) for (x, y), (x0, y0) in zip(got, want, strict=True))
    finally:
        primed.close()
        fresh.close()
    with pytest.raises(RuntimeError, match="closed"):
        list(primed.evaluate("val", 8))


# Steps that act on whole batches on the device: they never make a sample need the loader.
BATCH_LEVEL = {"noise_std", "re_prob", "mixup_alpha", "cutmix_alpha"}
CHANGED = {"hflip": True, "vflip": True, "rotation": 20.0, "scale_min": 0.5, "translate": 0.2}


@pytest.mark.parametrize("knob", [*sorted(GROUPS["augmentation"]), "auto_augment=rand", "auto_augment=trivial"])
def test_per_sample_is_on_exactly_when_the_train_transform_can_change_an_image(knob):
    """A contract over every augmentation knob: one the ready path missed would silently train
    without its augmentation; one it flagged needlessly would only cost speed."""
    if knob.startswith("auto_augment="):
        values: dict[str, object] = {"auto_augment": knob.split("=")[1]}
    else:
        values = {f"augmentation.{knob}": CHANGED.get(knob, 0.4)}
    transforms = create_transforms(resolve(values), 16, 3, (0.5,) * 3, (0.25,) * 3)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    random.seed(0)
    torch.manual_seed(0)
    changed = any(not torch.equal(transforms.train(image), transforms.evaluate(image)) for _ in range(30))
    assert transforms.per_sample == (knob not in BATCH_LEVEL)
    assert changed == transforms.per_sample
