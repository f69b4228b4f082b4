"""A complete copy of Ray Tune's experiment state, so that a driver killed mid-save can resume.

Tune writes ``experiment_state-<session>.json`` (and its searcher's state) to a staging folder and
its syncer then copies them into the experiment folder, neither step through a temporary file: a
driver killed (SIGKILL, a reboot) while the copy is under way leaves a truncated file, and Tune
cannot restore from it. The driver (``run._keeper.StateKeeper``, a Tune callback on its own loop)
calls :func:`keep_copy`: it copies the newest file of each kind, each time it changed and the copy
is whole, next to it as ``tunefleet-copy-<name>``, written to a temporary name and then moved
over (a rename on local disk; object stores write whole objects). ``tunefleet resume`` puts that copy back
(:func:`repair_state`) when the state itself is cut off, so the search goes on from at most a
few seconds before the kill.
"""

from __future__ import annotations

import json
import pickletools
import re
from pathlib import PurePosixPath
from typing import Any

from pyarrow import fs

STATE_FILE = re.compile(r"experiment_state-.*\.json$")
# What Tune saves each time, one file per driver session of each kind; restore reads the newest of each.
KINDS = {
    "experiment state": STATE_FILE,
    "search generator state": re.compile(r"search_gen_state-.*\.json$"),
    "searcher state": re.compile(r"searcher-state-.*\.pkl$"),
}
COPY_PREFIX = "tunefleet-copy-"
_PARSE_LIMIT = 4 * 2**20  # bytes of JSON parsed whole; past that, only the end is checked
_TAIL = 256
_STATE_END = re.compile(rb'"stats": \{"start_time": [-+0-9.eE]+\}\}\s*$')
Seen = dict[str, tuple[str, int, Any]]  # per kind: name, size and mtime of the file last copied


def open_folder(path: str) -> tuple[fs.FileSystem, str]:
    """The file system and root path of a folder URI (local path, s3://, gs://)."""
    filesystem, root = fs.FileSystem.from_uri(path)
    return filesystem, root.rstrip("/")


def list_folder(filesystem: fs.FileSystem, root: str) -> dict[str, fs.FileInfo]:
    """The folder's entries by name (none when it is missing)."""
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    return {PurePosixPath(info.path).name: info for info in infos}


def _whole(filesystem: fs.FileSystem, path: str, name: str = "") -> bool:
    """Whether the file is whole: it parses as JSON, or its pickle opcodes run to STOP (a cut-off
    file never does). A large experiment state is not parsed (a parse holds several times its
    size in the driver): its end is checked instead, the ``"stats"`` entry Tune writes last.
    ``name``: the file's own name when ``path`` is a temporary one (it says JSON or pickle)."""
    is_json = (name or path).endswith(".json")
    try:
        size = filesystem.get_file_info(path).size
        with filesystem.open_input_file(path) as f:
            if is_json and size > _PARSE_LIMIT:
                f.seek(max(0, size - _TAIL))
                return _STATE_END.search(f.read()) is not None
            data: bytes = f.readall()
        if is_json:
            json.loads(data)
        else:  # walk the pickle's opcodes to its STOP without running it
            for _ in pickletools.genops(data):
                pass
    except Exception:
        return False
    return True


def _copy_whole(filesystem: fs.FileSystem, source: str, target: str) -> bool:
    """Copy ``source`` to ``target`` through a temporary file, if the copy is whole."""
    temporary = f"{target}.tmp"
    filesystem.copy_file(source, temporary)
    if not _whole(filesystem, temporary, target):  # Tune's syncer was writing it: try again next time
        filesystem.delete_file(temporary)
        return False
    filesystem.move(temporary, target)
    return True


def keep_copy(path: str, copied: Seen) -> Seen:
    """Copy the newest file of each kind in the experiment folder at ``path`` when it differs
    from what ``copied`` says and is whole; returns what is copied now."""
    filesystem, root = open_folder(path)
    names = list_folder(filesystem, root)
    now = dict(copied)
    for kind, pattern in KINDS.items():
        saved = sorted(n for n in names if pattern.match(n))
        if not saved:
            continue
        newest = names[saved[-1]]
        seen = (saved[-1], newest.size, newest.mtime)
        if seen == copied.get(kind):
            continue
        if not _copy_whole(filesystem, newest.path, f"{root}/{COPY_PREFIX}{saved[-1]}"):
            continue
        for name in names:  # the copy of an earlier session's file is superseded
            if name.startswith(COPY_PREFIX) and pattern.search(name) and name != f"{COPY_PREFIX}{saved[-1]}":
                filesystem.delete_file(f"{root}/{name}")
        now[kind] = seen
    return now


def repair_state(path: str) -> str | None:
    """Where the newest saved file of a kind at ``path`` is cut off and a whole copy is kept, put
    the copy back (under its own name; a newer cut-off file is moved aside as
    ``<name>.truncated``, not deleted). Returns what was done, in words, or None when nothing
    needed doing or could be done."""
    filesystem, root = open_folder(path)
    names = list_folder(filesystem, root)
    repaired = [kind for kind, pattern in KINDS.items() if _repair(filesystem, root, names, pattern)]
    if not repaired:
        return None
    return f"Ray Tune's saved {' and '.join(repaired)} was cut off; resuming from its last whole copy"


def _repair(filesystem: fs.FileSystem, root: str, names: dict[str, fs.FileInfo], pattern: re.Pattern[str]) -> bool:
    saved = sorted(n for n in names if pattern.match(n))
    if not saved or _whole(filesystem, f"{root}/{saved[-1]}"):
        return False
    copies = sorted(n for n in names if n.startswith(COPY_PREFIX) and pattern.search(n))
    if not copies or not _whole(filesystem, f"{root}/{copies[-1]}"):
        return False
    original = copies[-1].removeprefix(COPY_PREFIX)
    for name in saved:
        if name > original:
            filesystem.move(f"{root}/{name}", f"{root}/{name}.truncated")
    return _copy_whole(filesystem, f"{root}/{copies[-1]}", f"{root}/{original}")
