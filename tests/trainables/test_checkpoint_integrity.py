"""Checkpoint integrity (issue 11, "a search loses nothing"), scenarios 12-14.

Scenario 12: the disk fills up (a file-size limit) while a checkpoint is written.
Scenario 13: a checkpoint is corrupt (flipped byte, zero-length file, truncated meta.json, missing file).
Scenario 14: training_state.pt is a malicious pickle that would write a marker file when unpickled.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from torch import nn

from tunefleet.analysis import export_ensemble
from tunefleet.spaces import (
    CheckpointMeta,
    CheckpointSettings,
    DataSpec,
    Resources,
    SearchSettings,
    SpecError,
    resolve,
)
from tunefleet.spaces import records as rec
from tunefleet.trainables import (
    OPTIMIZERS,
    SCHEDULES,
    CheckpointWriteError,
    CorruptCheckpoint,
    TrialSettings,
    build_model,
    create_optimizer,
    create_scheduler,
    load_model,
    load_training_state,
    read_meta,
    resumable_checkpoint,
    run_trial,
    save_checkpoint,
    verify_checkpoint,
)

PREV = rec.LAST + rec.PREVIOUS_SUFFIX


def _linear(seed: int, size: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(size, 4)


def _meta(epoch: int) -> CheckpointMeta:
    """The meta.json of the small stand-in checkpoints here."""
    settings = CheckpointSettings(data=DataSpec(), search=SearchSettings(), resources=Resources())
    return CheckpointMeta(
        model="test_resnet",
        class_names=["a", "b", "c", "d"],
        in_chans=1,
        image_size=8,
        mean=[0.5],
        std=[0.25],
        recipe={"lr": 0.1},
        settings=settings,
        epoch=epoch,
        metrics={"epoch": float(epoch)},
    )


def _write(directory: Path, epoch: int, size: int = 8) -> Path:
    """A small checkpoint with weights, logits and training state, as ``last/`` is written."""
    logits = {"val_logits": torch.randn(5, 4), "val_labels": torch.arange(5)}
    state = {"epoch": epoch, "best": 0.5, "best_epoch": epoch, "scaler": None}
    return save_checkpoint(
        directory, _linear(epoch, size), _meta(epoch), logits, training_state=state, keep_previous=True
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # in the tensor data, past the header: the file still parses
    path.write_bytes(bytes(data))


def _named(path: Path) -> str:
    """A pytest ``match`` pattern for a message that names ``path``."""
    return re.escape(str(path))


# ---------------------------------------------------------------- writing as one unit


def test_each_write_replaces_the_whole_directory_and_keeps_one_previous(tmp_path):
    """Nothing lost: after every write ``last/`` is the newest complete checkpoint and ``last.prev/``
    the one before, both verifying; older ones and temporary directories are gone."""
    for epoch in (1, 2, 3):
        _write(tmp_path / rec.LAST, epoch)
    assert sorted(p.name for p in tmp_path.iterdir()) == [rec.LAST, PREV]
    assert read_meta(tmp_path / rec.LAST).epoch == 3 and read_meta(tmp_path / PREV).epoch == 2
    meta = read_meta(tmp_path / rec.LAST)
    assert meta.checksums is not None
    assert set(meta.checksums) == {rec.WEIGHTS, rec.LOGITS, rec.TRAINING_STATE}
    for directory in (tmp_path / rec.LAST, tmp_path / PREV):
        verify_checkpoint(directory)
    assert load_training_state(tmp_path / PREV)["epoch"] == 2
    # best/ is written without a previous one
    save_checkpoint(tmp_path / rec.BEST, _linear(1), _meta(1))
    save_checkpoint(tmp_path / rec.BEST, _linear(2), _meta(2))
    assert not (tmp_path / (rec.BEST + rec.PREVIOUS_SUFFIX)).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [rec.BEST, rec.LAST, PREV]


_FILL_UP = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    import torch
    from torch import nn
    from tunefleet.spaces import CheckpointMeta
    from tunefleet.trainables import CheckpointWriteError, save_checkpoint

    torch.manual_seed(3)
    model = nn.Linear(256, 256)  # 257 KiB of weights, over the limit below
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
    meta = CheckpointMeta.model_validate_json(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        save_checkpoint(Path(sys.argv[1]), model, meta, training_state={"epoch": 3}, keep_previous=True)
    except CheckpointWriteError as err:
        print(json.dumps({"errno": err.errno, "message": str(err), "is_oserror": isinstance(err, OSError)}))
        sys.exit(0)
    sys.exit(3)
    """
)


def test_disk_full_while_writing_keeps_the_previous_checkpoints(tmp_path):
    """Scenario 12, disk full while writing a checkpoint (a size-limited process: RLIMIT_FSIZE).

    Nothing lost: the write fails with an OSError naming the checkpoint and the reason, every
    byte of ``last/`` and ``last.prev/`` is as before and both still verify, no temporary
    directory is left, and the next write (with space again) rotates as usual.
    """
    target = tmp_path / rec.LAST
    _write(target, 1)
    _write(target, 2)
    before = _files(tmp_path)
    fill_up = [sys.executable, "-c", _FILL_UP, str(target), _meta(3).model_dump_json()]
    done = subprocess.run(fill_up, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    failure = json.loads(done.stdout.strip().splitlines()[-1])
    assert failure["errno"] == errno.EFBIG and failure["is_oserror"]
    assert str(target) in failure["message"] and "File too large" in failure["message"]
    assert _files(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [rec.LAST, PREV]
    verify_checkpoint(target)
    verify_checkpoint(tmp_path / PREV)
    assert load_training_state(target)["epoch"] == 2
    _write(target, 3)
    assert [read_meta(tmp_path / d).epoch for d in (rec.LAST, PREV)] == [3, 2]


def test_write_error_keeps_its_errno_and_path_across_pickling(tmp_path):
    """Ray sends a trial's exception to the driver pickled: the reason must survive the trip."""
    import pickle

    err = CheckpointWriteError(tmp_path / rec.LAST, OSError(errno.ENOSPC, "No space left on device"))
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, OSError) and again.errno == errno.ENOSPC
    assert str(again) == f"cannot write checkpoint {tmp_path / rec.LAST}: No space left on device (ENOSPC)"
    corrupt = pickle.loads(pickle.dumps(CorruptCheckpoint(tmp_path / rec.WEIGHTS, "zero length")))
    assert str(corrupt) == f"{tmp_path / rec.WEIGHTS}: zero length"


# ---------------------------------------------------------------- corrupt and zero-length checkpoints


def _flip_weights(d: Path) -> Path:
    _flip_byte(d / rec.WEIGHTS)
    load_file(str(d / rec.WEIGHTS))  # still a valid safetensors file: only the checksum can tell
    return d / rec.WEIGHTS


def _empty_weights(d: Path) -> Path:
    (d / rec.WEIGHTS).write_bytes(b"")
    return d / rec.WEIGHTS


def _truncate_meta(d: Path) -> Path:
    text = (d / rec.META).read_text()
    (d / rec.META).write_text(text[: len(text) // 2])
    return d / rec.META


def _drop_logits(d: Path) -> Path:
    (d / rec.LOGITS).unlink()
    return d / rec.LOGITS


def _drop_meta(d: Path) -> Path:
    (d / rec.META).unlink()
    return d / rec.META


def _unlisted_state(d: Path) -> Path:
    meta = json.loads((d / rec.META).read_text())
    del meta[rec.CHECKSUMS_KEY][rec.TRAINING_STATE]
    (d / rec.META).write_text(json.dumps(meta))
    return d / rec.TRAINING_STATE


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_flip_weights, "sha256 mismatch"),
        (_empty_weights, "zero length"),
        (_truncate_meta, "invalid JSON"),
        (_drop_logits, "missing"),
        (_drop_meta, "missing"),
        (_unlisted_state, "not covered by the checksums"),
    ],
)
def test_a_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, damage, problem):
    """Scenario 13. Nothing lost: a damaged checkpoint is never loaded as if it were sound; the
    refusal names the damaged file, and resuming falls back to the intact ``last.prev/``."""
    _write(tmp_path / rec.LAST, 1)
    _write(tmp_path / rec.LAST, 2)
    bad = damage(tmp_path / rec.LAST)
    with pytest.raises(CorruptCheckpoint, match=_named(bad) + ": " + problem) as caught:
        verify_checkpoint(tmp_path / rec.LAST)
    assert caught.value.path == bad
    with pytest.raises(CorruptCheckpoint, match=_named(bad)):
        load_training_state(tmp_path / rec.LAST)
    assert resumable_checkpoint(tmp_path) == tmp_path / PREV


def test_resume_falls_back_to_previous_then_to_a_fresh_start_with_warnings(tmp_path, caplog):
    """Nothing lost beyond one epoch: a corrupt ``last/`` gives ``last.prev/``, both corrupt give
    a fresh start; each skipped checkpoint is logged with the offending file."""
    _write(tmp_path / rec.LAST, 1)
    _write(tmp_path / rec.LAST, 2)
    assert resumable_checkpoint(tmp_path) == tmp_path / rec.LAST
    _empty_weights(tmp_path / rec.LAST)
    with caplog.at_level(logging.WARNING):
        assert resumable_checkpoint(tmp_path) == tmp_path / PREV
    assert str(tmp_path / rec.LAST / rec.WEIGHTS) in caplog.text
    _flip_weights(tmp_path / PREV)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert resumable_checkpoint(tmp_path) is None
    assert str(tmp_path / PREV / rec.WEIGHTS) in caplog.text and "from scratch" in caplog.text


def test_checkpoints_written_before_checksums_load_but_not_when_empty(tmp_path):
    """Older checkpoints (meta.json without ``sha256``) still resume; a zero-length file in one
    is refused all the same."""
    directory = _write(tmp_path / rec.LAST, 1)
    meta = json.loads((directory / rec.META).read_text())
    del meta[rec.CHECKSUMS_KEY]
    (directory / rec.META).write_text(json.dumps(meta))
    verify_checkpoint(directory)
    assert load_training_state(directory)["epoch"] == 1
    (directory / rec.LOGITS).write_bytes(b"")
    with pytest.raises(CorruptCheckpoint, match=_named(directory / rec.LOGITS) + ": zero length"):
        verify_checkpoint(directory)


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    dict.fromkeys([(name, "cosine") for name in OPTIMIZERS] + [("sgd", name) for name in SCHEDULES]),
)
def test_training_state_round_trips_without_unpickling_code(tmp_path, optimizer, schedule):
    """Every optimizer's and schedule's state (and a GradScaler's) loads with ``weights_only=True``
    and equals what was saved."""
    recipe = resolve({"optimizer": optimizer, "schedule": schedule, "lr": 0.01})
    model = build_model(recipe, 10, 1)
    opt = create_optimizer(model, recipe, 0.01)
    sched = create_scheduler(opt, recipe, 3, 4)
    model(torch.rand(2, 1, 16, 16)).sum().backward()
    opt.step()
    sched.step_update(1)
    sched.step(1, metric=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict()}
    state |= {"epoch": 1, "best": 0.25, "best_epoch": 1}
    save_checkpoint(tmp_path / rec.LAST, model, _meta(1), training_state=state, keep_previous=True)
    loaded = load_training_state(tmp_path / rec.LAST)
    assert loaded["scheduler"] == state["scheduler"] and loaded["scaler"] == state["scaler"]
    assert (loaded["epoch"], loaded["best"], loaded["best_epoch"]) == (1, 0.25, 1)
    opt.load_state_dict(loaded["optimizer"])
    sched.load_state_dict(loaded["scheduler"])


# ---------------------------------------------------------------- a malicious pickle


class _TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``: what a planted pickle could do, harmlessly."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _plant(directory: Path, marker: Path, forge_checksum: bool) -> Path:
    path = directory / rec.TRAINING_STATE
    torch.save({"optimizer": _TouchOnUnpickle(marker), "epoch": 2}, path)
    if forge_checksum:
        meta = json.loads((directory / rec.META).read_text())
        meta[rec.CHECKSUMS_KEY][rec.TRAINING_STATE] = hashlib.sha256(path.read_bytes()).hexdigest()
        (directory / rec.META).write_text(json.dumps(meta))
    return path


def test_the_planted_pickle_would_run_code(tmp_path):
    """The control for the test below: unpickled the old way, the planted file writes its marker."""
    _write(tmp_path / rec.LAST, 1)
    marker = tmp_path / "pwned"
    path = _plant(tmp_path / rec.LAST, marker, forge_checksum=True)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("forge_checksum", [False, True], ids=["checksum-mismatch", "checksum-forged"])
def test_a_malicious_training_state_is_refused_and_never_runs(tmp_path, forge_checksum):
    """Scenario 14. Nothing lost, nothing run: a pickle planted as ``training_state.pt`` is refused
    naming the file, and the marker its unpickling would write never appears: with its
    checksum left stale (refused by the checksum) and with the checksum forged to match (refused by
    ``weights_only``). Either way resuming uses ``last.prev/`` instead."""
    _write(tmp_path / rec.LAST, 1)
    _write(tmp_path / rec.LAST, 2)
    marker = tmp_path / "pwned"
    path = _plant(tmp_path / rec.LAST, marker, forge_checksum)
    problem = "refused: unpickling it would need code" if forge_checksum else "sha256 mismatch"
    with pytest.raises(CorruptCheckpoint, match=_named(path) + ": " + problem):
        load_training_state(tmp_path / rec.LAST)
    assert resumable_checkpoint(tmp_path) == tmp_path / PREV
    assert not marker.exists()


# ---------------------------------------------------------------- whole trials and export

SETTINGS = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=3))
RECIPE = {"lr": 0.05, "batch_size": 64, "augmentation.hflip": True, "augmentation.scale_min": 0.7}


def _collect(root: Path, resume_from: Path | None = None, tag: str = "run") -> list[tuple[dict[str, float], Path]]:
    """Run a trial, keeping a copy of every reported checkpoint directory."""
    reports: list[tuple[dict[str, float], Path]] = []

    def report(metrics, checkpoint_dir):
        kept = root / f"{tag}-ckpt{len(reports) + 1}"
        shutil.copytree(checkpoint_dir, kept)
        reports.append((metrics, kept))

    run_trial(resolve(RECIPE), SETTINGS, report, resume_from=resume_from)
    return reports


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> list[tuple[dict[str, float], Path]]:
    """One three-epoch trial, never interrupted: what a resumed trial must reproduce."""
    return _collect(tmp_path_factory.mktemp("straight"))


def test_every_reported_checkpoint_verifies_and_keeps_the_epoch_before(straight):
    for metrics, reported in straight:
        epoch = int(metrics["epoch"])
        verify_checkpoint(reported / rec.LAST)
        verify_checkpoint(reported / rec.BEST)
        assert read_meta(reported / rec.LAST).epoch == epoch
        if epoch > 1:
            verify_checkpoint(reported / PREV)
            assert read_meta(reported / PREV).epoch == epoch - 1


def test_trial_resumed_past_a_corrupt_last_continues_from_the_epoch_before(straight, tmp_path, caplog):
    """Scenario 13, resume. Nothing lost but one epoch, retrained exactly: a trial resumed from a
    reported directory whose ``last/`` (epoch 2) has a flipped byte starts from ``last.prev/``
    (epoch 1), runs epochs 2 and 3 with the same losses, ends with the same weights as the trial
    that never stopped, and keeps its resume point as ``last.prev/`` in its first report."""
    reported = tmp_path / "reported"
    shutil.copytree(straight[1][1], reported)
    bad = _flip_weights(reported / rec.LAST)
    with caplog.at_level(logging.WARNING):
        resumed = _collect(tmp_path, resume_from=reported, tag="resumed")
    assert str(bad) in caplog.text
    assert [int(m["epoch"]) for m, _ in resumed] == [2, 3]
    assert [m["train_loss"] for m, _ in resumed] == [m["train_loss"] for m, _ in straight[1:]]
    a = load_file(str(straight[2][1] / rec.LAST / rec.WEIGHTS))
    b = load_file(str(resumed[-1][1] / rec.LAST / rec.WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_meta(resumed[0][1] / PREV).epoch == 1


def _search(tmp_path: Path, best: Path, names: list[str]) -> tuple[str, MlflowClient, dict[str, str]]:
    """A search run with finished trial runs that each hold ``best`` as their checkpoint, as the
    driver leaves them; ranked in the order of ``names``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("integrity", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, tags={rec.ROLE_TAG: rec.ROLE_SEARCH}, run_name="search").info.run_id
    client.log_param(parent, rec.SEARCH_METRIC_PARAM, "val_acc")
    client.log_param(parent, rec.SEARCH_MODE_PARAM, "max")
    runs = {}
    for rank, name in enumerate(names):
        tags = {rec.ROLE_TAG: rec.ROLE_TRIAL, rec.PARENT_RUN_TAG: parent}
        run_id = client.create_run(exp, tags=tags, run_name=name).info.run_id
        client.log_metric(run_id, rec.best_key("val_acc"), 0.9 - rank / 10)
        client.log_artifacts(run_id, str(best), rec.CHECKPOINT_ARTIFACT_DIR)
        client.set_terminated(run_id, rec.OUTCOME_STATUS[rec.COMPLETED])
        runs[name] = run_id
    client.set_terminated(parent, "FINISHED")
    return uri, client, runs


def test_export_refuses_a_corrupt_member_naming_its_file(straight, tmp_path):
    """Scenario 13, export. Nothing exported from bad weights: the same search exports while its
    checkpoints are sound; once a member's stored weights have a flipped byte, or are empty, the
    export stops with one line naming that member and the stored file, and writes nothing."""
    uri, client, runs = _search(tmp_path, straight[-1][1] / rec.BEST, ["alpha", "beta"])
    result = export_ensemble(uri, "integrity", 2, tmp_path / "good")
    assert [m.name for m in result.card.members] == ["alpha", "beta"]

    stored = Path(client.get_run(runs["beta"]).info.artifact_uri.removeprefix("file://"))
    weights = stored / rec.CHECKPOINT_ARTIFACT_DIR / rec.WEIGHTS
    for damage, problem in ((_flip_byte, "sha256 mismatch"), (lambda p: p.write_bytes(b""), "zero length")):
        damage(weights)
        with pytest.raises(SpecError) as caught:
            export_ensemble(uri, "integrity", 2, tmp_path / "bad")
        message = str(caught.value)
        assert message.startswith("trial beta: ") and "\n" not in message
        assert f"{rec.CHECKPOINT_ARTIFACT_DIR}/{rec.WEIGHTS}: {problem}" in message
        assert str(weights) in message
        assert not (tmp_path / "bad").exists()


def test_loading_a_model_verifies_it_first(straight, tmp_path):
    best = tmp_path / rec.BEST
    shutil.copytree(straight[-1][1] / rec.BEST, best)
    model, meta = load_model(best)
    assert meta.epoch >= 1 and not model.training
    _flip_byte(best / rec.WEIGHTS)
    with pytest.raises(CorruptCheckpoint, match=_named(best / rec.WEIGHTS)):
        load_model(best)
