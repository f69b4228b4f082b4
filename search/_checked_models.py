"""The model checks this machine has passed, remembered so the next search skips them.

The preflight's model checks (every model is a timm name, with weights if pretrained may be on;
each takes the spec's image size) depend on the model names, the image size, whether pretrained
may be on, and the installed timm and torch, and on nothing else. Answering them costs a search
three seconds of timm and torch imports on a driver that otherwise never needs them, the same
three seconds every time an engineer reruns a spec. So a pass is recorded under its key in the
user's cache (``$TUNEFLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunefleet``, else
``~/.cache/tunefleet``), and a search whose key is there skips the checks. A failure is never
recorded: bad input is answered every time. A cache that cannot be read or written is no cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tunefleet.spaces import TOP_KNOBS, SearchSpec

from ._defaults import cache_dir

logger = logging.getLogger(__name__)
# Bump when check_models or check_input_size (``_preflight``) checks something new: older records
# then vouch for nothing.
CHECKS_VERSION = 1


def model_names(spec: SearchSpec) -> list[Any]:
    """Every model the space can pick (the catalog's default when the spec names none)."""
    domain = spec.space.get("model")
    return [TOP_KNOBS["model"].default] if domain is None else domain.grid_values("space.model")


def may_be_pretrained(spec: SearchSpec) -> bool:
    pretrained = spec.space.get("finetune.pretrained")
    return pretrained is not None and True in pretrained.grid_values("space.finetune.pretrained")


def _record(spec: SearchSpec) -> Path | None:
    """The file that says these checks passed; None where a version is unknown (nothing vouches)."""
    try:
        versions = {name: version(name) for name in ("timm", "torch")}
    except PackageNotFoundError:
        return None
    key = {
        "checks": CHECKS_VERSION,
        "models": sorted(str(name) for name in model_names(spec)),
        "image_size": spec.data.image_size,
        "pretrained": may_be_pretrained(spec),
        **versions,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir() / "checked-models" / f"{digest[:32]}.json"


def remembered(spec: SearchSpec) -> bool:
    """True when this machine passed the same model checks before."""
    record = _record(spec)
    return record is not None and record.is_file()


def remember(spec: SearchSpec) -> None:
    """Record that the model checks of ``spec`` passed (written whole or not at all)."""
    record = _record(spec)
    if record is None:
        return
    content = {"models": sorted(str(n) for n in model_names(spec)), "image_size": spec.data.image_size}
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        partial = record.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(content) + "\n")
        os.replace(partial, record)
    except OSError as err:  # a read-only home, a full disk: the next search checks again
        logger.debug("model checks not remembered in %s: %s", record.parent, err)
