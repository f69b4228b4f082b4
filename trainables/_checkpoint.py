"""Checkpoints as plain files: safetensors weights, JSON metadata, and the logits ensembling needs.

Layout of a checkpoint directory::

    model.safetensors   the state dict
    meta.json           ``tunefleet.spaces.CheckpointMeta``: model name, classes, input shape,
                        normalization, recipe, settings, epoch, metrics, every epoch's report so
                        far, and ``sha256``: {file name: sha256 hex} of every other file here
    logits.safetensors  val/test logits and labels of these weights (for ensembles and checks)
    training_state.pt   optimizer and LR-schedule state, epoch, best so far (to resume training)

A trial reports a directory holding two of these: ``best/`` (the weights with the best search
metric, with logits) and ``last/`` (the latest epoch, with training state), plus ``last.prev/``
(the epoch before), which resuming falls back to when ``last/`` does not verify.

A checkpoint is written as one unit: every file goes into a temporary sibling directory, meta.json
(with the checksums) last, and only then is the directory renamed into place. A crash or a full
disk never leaves a half-written checkpoint under the final name, nor a mix of two epochs' files.
Readers check the checksums before they trust a byte (``verify_checkpoint``), and the training
state loads with ``weights_only=True``: a pickle planted in shared storage cannot run code.
meta.json is written here (``save_checkpoint``) and read only as the record (``read_meta``, in
``_meta.py``); a meta.json that is not one is a ``CorruptCheckpoint`` naming it and its first
problem.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from tunefleet.spaces import CheckpointMeta
from tunefleet.spaces.records import LAST, LOGITS, META, PREVIOUS_SUFFIX, TRAINING_STATE, WEIGHTS

from ._meta import CorruptCheckpoint, read_meta

logger = logging.getLogger(__name__)

# The files besides meta.json that tunefleet reads from a checkpoint; each one present must be
# covered by a checksum, so a file dropped in later is not trusted.
_CHECKED_FILES = (WEIGHTS, LOGITS, TRAINING_STATE)
_TMP_MARK, _OLD_MARK = ".tmp-", ".old-"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, file too large, ...); the checkpoint it was to
    replace, and its ``.prev``, are kept. Carries the cause's ``errno``; ``filename`` is the path."""

    def __init__(self, path: Path, cause: OSError) -> None:
        self.cause = cause
        reason = cause.strerror or str(cause)
        code = errno.errorcode.get(cause.errno, "") if cause.errno is not None else ""
        self.message = f"cannot write checkpoint {path}: {reason}{f' ({code})' if code else ''}"
        super().__init__(cause.errno, reason, str(path))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # Ray pickles a trial's exception to the driver
        return type(self), (Path(self.filename), self.cause)


def _write_file(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` durably; return its sha256."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable (skipped where the file system cannot sync directories)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _sweep(directory: Path) -> None:
    """Remove what an interrupted earlier write of ``directory`` left beside it."""
    for mark in (_TMP_MARK, _OLD_MARK):
        for stale in directory.parent.glob(f".{directory.name}{mark}*"):
            shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    meta: CheckpointMeta,
    logits: dict[str, torch.Tensor] | None = None,
    training_state: dict[str, Any] | None = None,
    keep_previous: bool = False,
) -> Path:
    """Write a checkpoint as ``directory`` (its parent created if missing) and return it.

    ``meta`` is written as ``meta.json`` with the checksums of the other files filled in. The
    whole directory is replaced at once. With ``keep_previous`` the checkpoint it replaces
    becomes ``<directory>.prev`` (the one before that is removed). Raises ``CheckpointWriteError``
    when a file cannot be written; the existing checkpoint is then left untouched.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _sweep(directory)
    # Serialized in memory and written with Python's own I/O: safetensors and torch.save report a
    # full disk as their own exception types, this way it is always an OSError with its errno.
    payload = {WEIGHTS: safetensors_bytes(_cpu(model.state_dict()))}
    if logits:
        payload[LOGITS] = safetensors_bytes(_cpu(logits))
    if training_state is not None:
        buffer = io.BytesIO()
        torch.save(training_state, buffer)
        payload[TRAINING_STATE] = buffer.getvalue()

    tmp = directory.with_name(f".{directory.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        checksums = {name: _write_file(tmp / name, data) for name, data in payload.items()}
        meta_text = meta.with_checksums(checksums).model_dump_json(indent=2)
        _write_file(tmp / META, meta_text.encode())  # last: a directory with meta.json is complete
        _fsync_dir(tmp)
        _swap(tmp, directory, keep_previous)
    except OSError as err:
        raise CheckpointWriteError(directory, err) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _swap(tmp: Path, directory: Path, keep_previous: bool) -> None:
    """Rename the complete ``tmp`` into place. With ``keep_previous``, whatever step a crash stops
    at, ``directory`` or its ``.prev`` holds a complete checkpoint (resuming tries both); without,
    the replaced one waits under a hidden name for the instant between two renames."""
    old = directory.with_name(f".{directory.name}{_OLD_MARK}{uuid.uuid4().hex[:8]}")
    previous = directory.with_name(directory.name + PREVIOUS_SUFFIX)
    if directory.exists():
        if keep_previous:
            if previous.exists():
                os.replace(previous, old)
            os.replace(directory, previous)
        else:
            os.replace(directory, old)
    os.replace(tmp, directory)
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_checkpoint(directory: str | Path) -> CheckpointMeta:
    """Return the meta.json of ``directory`` once every file of it can be trusted; else raise
    ``CorruptCheckpoint`` naming the first file that cannot.

    meta.json must be a valid ``CheckpointMeta``; every file its ``sha256`` lists must exist, be
    non-empty and match; the weights must be listed, and so must the logits and training state
    where present. A meta.json without checksums (written before they existed) is accepted, but
    the weights must be there and no file may be empty.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CorruptCheckpoint(directory, "missing (not a checkpoint directory)")
    meta = read_meta(directory)
    if meta.checksums is None:
        _check_unlisted(directory)
    else:
        _check_listed(directory, meta.checksums)
    return meta


def _check_unlisted(directory: Path) -> None:
    """A checkpoint from before checksums: the weights are there, no file is empty."""
    for name in _CHECKED_FILES:
        path = directory / name
        if name == WEIGHTS and not path.is_file():
            raise CorruptCheckpoint(path, "missing")
        if path.is_file() and path.stat().st_size == 0:
            raise CorruptCheckpoint(path, "zero length")


def _check_listed(directory: Path, checksums: dict[str, str]) -> None:
    """Every file the checksums list matches, and every file tunefleet reads is listed."""
    if WEIGHTS not in checksums:
        raise CorruptCheckpoint(directory / META, f"its checksums do not list {WEIGHTS}")
    for name in _CHECKED_FILES:
        if name not in checksums and (directory / name).exists():
            raise CorruptCheckpoint(directory / name, f"not covered by the checksums in {META}")
    for name, expected in sorted(checksums.items()):
        path = directory / name
        if not path.is_file():
            raise CorruptCheckpoint(path, f"missing (listed in {META})")
        if path.stat().st_size == 0:
            raise CorruptCheckpoint(path, "zero length")
        try:
            found = _sha256(path)
        except OSError as err:
            raise CorruptCheckpoint(path, f"unreadable ({err.strerror or err})") from err
        if found != expected:
            raise CorruptCheckpoint(
                path, f"sha256 mismatch ({META} says {expected[:16]}..., the file is {found[:16]}...)"
            )


def resumable_checkpoint(reported_dir: str | Path) -> Path | None:
    """The checkpoint to resume from in a reported directory: ``last/`` if it verifies, else
    ``last.prev/`` if that does, else None (start fresh). Each one skipped is logged as a warning."""
    reported_dir = Path(reported_dir)
    for candidate in (reported_dir / LAST, reported_dir / (LAST + PREVIOUS_SUFFIX)):
        if not (candidate / TRAINING_STATE).is_file():
            logger.warning("not resuming from %s: it holds no %s", candidate, TRAINING_STATE)
            continue
        try:  # verifies, then loads without unpickling code: a forged checksum is caught here too
            load_training_state(candidate)
        except CorruptCheckpoint as err:
            logger.warning("not resuming from %s: %s", candidate, err)
            continue
        return candidate
    logger.warning("no usable checkpoint to resume from in %s; the trial starts from scratch", reported_dir)
    return None


def load_weights(directory: str | Path, model: nn.Module) -> nn.Module:
    """Load a checkpoint's weights into ``model`` (strict: every key must match).

    Does not check them: call ``verify_checkpoint`` first for a checkpoint from elsewhere."""
    model.load_state_dict(load_file(str(Path(directory) / WEIGHTS)), strict=True)
    return model


def load_logits(directory: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's val/test logits and labels as tensors (``logits_arrays`` for NumPy)."""
    return load_file(str(Path(directory) / LOGITS))


def load_model(directory: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Verify a checkpoint, rebuild the timm model it describes, load its weights, return it in
    eval mode with its meta. Raises ``CorruptCheckpoint`` naming the file that fails verification."""
    from ._model import create_model  # timm loads only here: reading meta or logits needs none of it

    meta = verify_checkpoint(directory)
    model = create_model(meta.model, num_classes=len(meta.class_names), in_chans=meta.in_chans)
    load_weights(directory, model)
    return model.eval(), meta


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """A checkpoint's optimizer/scheduler/scaler state and loop counters, after verifying it.

    Loads with ``weights_only=True`` (tensors, containers and plain values only): anything that
    would need code run to unpickle is refused as ``CorruptCheckpoint``, even with a forged checksum.
    """
    verify_checkpoint(directory)
    path = Path(directory) / TRAINING_STATE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no training state ({TRAINING_STATE}); it cannot be resumed")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CorruptCheckpoint(path, f"refused: unpickling it would need code ({_unpickler_reason(err)})") from err
    except (RuntimeError, EOFError) as err:  # not a torch file at all, or cut short
        raise CorruptCheckpoint(
            path, f"unreadable ({(str(err).strip() or type(err).__name__).splitlines()[0]})"
        ) from err
    if not isinstance(state, dict):
        raise CorruptCheckpoint(path, f"holds a {type(state).__name__}, not a training-state dict")
    return state


def _unpickler_reason(err: Exception) -> str:
    """The one informative line of torch's long weights-only refusal (the global it refused)."""
    text = str(err)
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else text).splitlines() if line.strip()]
    return lines[0].split(". Please")[0] if lines else type(err).__name__
