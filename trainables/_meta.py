"""Reading a checkpoint's record without torch: its ``meta.json`` and its logits as NumPy arrays.

Its own module so that what only reads a search back (``tunefleet report``: each top trial's
classes and validation logits) loads neither torch nor timm; ``_checkpoint.py`` writes these
files and verifies whole checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from safetensors.numpy import load_file

from tunefleet.spaces import CheckpointMeta, record_problem
from tunefleet.spaces.records import LOGITS, META


class CorruptCheckpoint(ValueError):
    """A checkpoint file is missing, empty, unreadable or not what its checksum says.

    ``str(err)`` is one line naming the file: ``/ckpt/last/model.safetensors: sha256 mismatch ...``.
    """

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.problem)


def read_meta(directory: str | Path) -> CheckpointMeta:
    """A checkpoint's ``meta.json`` as the record, without verifying the other files (see
    ``verify_checkpoint``). Raises ``CorruptCheckpoint`` naming meta.json and its first problem."""
    meta_path = Path(directory) / META
    if not meta_path.is_file():
        raise CorruptCheckpoint(meta_path, "missing")
    try:
        text = meta_path.read_bytes()
    except OSError as err:
        raise CorruptCheckpoint(meta_path, f"unreadable ({err.strerror or err})") from err
    if not text:
        raise CorruptCheckpoint(meta_path, "zero length")
    try:
        return CheckpointMeta.model_validate_json(text)
    except ValidationError as err:
        raise CorruptCheckpoint(meta_path, record_problem(err)) from None


def logits_arrays(directory: str | Path) -> dict[str, np.ndarray]:
    """A checkpoint's val/test logits and labels (``logits.safetensors``) as NumPy arrays."""
    return load_file(str(Path(directory) / LOGITS))
