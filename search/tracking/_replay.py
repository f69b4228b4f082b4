"""``tunefleet replay SPOOL``: apply the MLflow writes a search could not deliver before it ended.

``TrackingWriter.close`` leaves them in a spool file (``write_spool``: a header with the tracking
URI and the key -> run id map, then one write per line, in order). Replay reads the whole file
first, so a missing or damaged one changes nothing, then applies it in order with a writer of its
own: the same retries, runs the search already created are reused, and a run whose creation was
in flight when the search gave up is found by its create key instead of being made twice. Every
write may be applied twice without changing the store (``_writer.py``), so a replay cut short
can simply run again. Done, the spool is renamed ``<name>.replayed`` so it is not applied twice.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ._open import open_store, sqlite_database
from ._store import OP_ADAPTER, Op
from ._writer import SPOOL_FORMAT, SpoolReport, TrackingWriter

REPLAYED_SUFFIX = ".replayed"
DEFAULT_TIMEOUT_S = 300.0


class SpoolError(ValueError):
    """The spool cannot be replayed as it is (missing, not a spool, damaged, no store to write to)."""


class ReplayIncompleteError(RuntimeError):
    """MLflow did not take every write; the spool now holds exactly the ones left."""

    def __init__(self, applied: int, refused: int, left: SpoolReport | None, path: Path) -> None:
        self.applied, self.refused, self.left = applied, refused, left
        what = f"{left.ops} writes were not delivered" if left else f"MLflow refused {refused} writes (logged above)"
        super().__init__(
            f"{what} ({applied} applied); {path} keeps them (every write may be applied again safely): "
            f"check the tracking URI and run `tunefleet replay {shlex.quote(str(path))}` again"
        )


class _Header(BaseModel):
    tunefleet_spool: int
    tracking_uri: str
    run_ids: dict[str, str]


@dataclass(frozen=True)
class Spool:
    tracking_uri: str
    run_ids: dict[str, str]
    ops: list[Op]


def read_spool(path: Path) -> Spool:
    """Read and check a whole spool file; ``SpoolError`` names the first problem."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpoolError(f"{path}: no such spool file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpoolError(f"{path}: cannot read it ({err})") from None
    try:
        header = _Header.model_validate(json.loads(lines[0]) if lines else None)
    except (json.JSONDecodeError, ValidationError):
        raise SpoolError(f"{path}: not a tunefleet spool (its first line is no spool header)") from None
    if header.tunefleet_spool != SPOOL_FORMAT:
        raise SpoolError(f"{path}: spool format {header.tunefleet_spool}; this tunefleet reads {SPOOL_FORMAT}")
    ops: list[Op] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            ops.append(OP_ADAPTER.validate_json(line))
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise SpoolError(f"{path}: line {number} is not a write ({where}: {problem['msg']})") from None
    return Spool(header.tracking_uri, header.run_ids, ops)


def _free(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def replay_spool(spool_path: str | Path, tracking_uri: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, Path]:  # fmt: skip
    """``replay``, also returning where the spool was moved once applied."""
    path = Path(spool_path)
    spool = read_spool(path)
    uri = tracking_uri or spool.tracking_uri
    database = sqlite_database(uri)
    if database is not None and not database.is_file():
        # A mistyped path would make a new, empty store that refuses every write to the search's runs.
        raise SpoolError(f"{uri}: no MLflow store there (pass --tracking-uri with the search's store)")
    open_store(uri)
    writer = TrackingWriter(uri, adopt_created=True)
    for key, run_id in spool.run_ids.items():
        writer.bind(key, run_id)
    for op in spool.ops:
        writer.submit(op)
    left = writer.close(timeout_s, path.with_name(path.name + ".left"))
    refused = sum(writer.rejected.values())
    if left is not None:
        os.replace(left.path, path)  # what is left, and the run ids learned, replace the spool
        raise ReplayIncompleteError(writer.delivered, refused, left, path)
    if refused:  # most likely the wrong store: keep the spool for a replay against the right one
        raise ReplayIncompleteError(writer.delivered, refused, None, path)
    done = _free(path.with_name(path.name + REPLAYED_SUFFIX))
    path.rename(done)
    return writer.delivered, done


def replay(spool_path: str | Path, tracking_uri: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Apply a spool's writes in order to ``tracking_uri`` (default: the URI it was written for);
    return how many were applied, and rename the spool ``<name>.replayed``. ``SpoolError``: the
    file or store is unusable and nothing was written; ``ReplayIncompleteError``: some writes
    were not taken, and the spool holds what is left."""
    return replay_spool(spool_path, tracking_uri, timeout_s)[0]
