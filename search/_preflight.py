"""The checks every entry point runs before anything starts: names, grid size, data, input size.

One module that the CLI's search, the Python API, ``fit`` and the service's ``submit`` (the client)
share, so a submitted search is refused on the user's machine by the same rules as a local one,
and the service does not reach into ``run`` for them. Imports stay light: timm and torch load
inside the model checks, once a spec has parsed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from tunefleet.spaces import SearchSpec, SpecError, grid_size

from ._checked_models import may_be_pretrained, model_names, remember, remembered
from ._defaults import MODELS_CHECKED_ENV, models_fingerprint

if TYPE_CHECKING:
    from tunefleet.trainables import DataPlan

    from .run._warm import WarmStart


def check_models(spec: SearchSpec) -> None:
    """Every model the space can pick must be a timm model name (with weights if pretrained may be on)."""
    import timm

    names = model_names(spec)
    for name in names:
        if not isinstance(name, str) or not timm.is_model(name):
            close = timm.list_models(f"*{str(name)[:6]}*")[:3]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise SpecError("space.model", f"unknown timm model {name!r}{hint}")
    if may_be_pretrained(spec):
        for name in names:
            if not timm.list_models(name, pretrained=True):
                raise SpecError("space.finetune.pretrained", f"timm has no pretrained weights for {name!r}")


def check_data(spec: SearchSpec) -> tuple[str, DataPlan]:
    """The data must be there, trainable, and fit the path asked for (``data.cache``); returns a
    one-line description of it and the path its trials will take."""
    from tunefleet.trainables import plan_data, scan_folder

    data = spec.data.with_absolute_root()
    if data.kind != "imagefolder":
        return data.kind, plan_data(data)
    scan = scan_folder(data.root)
    return scan.describe(), plan_data(data, scan)


def check_input_size(spec: SearchSpec, in_chans: int = 3, num_classes: int = 2) -> None:
    """Each model must take images of ``data.image_size``: one forward pass on a blank batch."""
    import timm
    import torch

    size = spec.data.image_size
    for name in model_names(spec):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans).eval()
        try:
            with torch.no_grad():
                model(torch.zeros(2, in_chans, size, size))
        except Exception as err:
            reason = str(err).splitlines()[0][:160]
            raise SpecError("data.image_size", f"{size} px does not fit model {name!r}: {reason}") from None


class Plan(NamedTuple):
    trials: int
    data: str  # one line describing the data found
    cache: DataPlan  # memory or stream, and why
    warm: WarmStart | None = None  # earlier trials it learns from (search.warm_start)


def preflight(spec: SearchSpec) -> Plan:
    """Everything checkable before Ray starts: names, grid size, data, input size vs. models.

    A submitted job's driver skips the model checks when ``submit`` passed them for the same spec
    with the same tunefleet, timm and torch (``MODELS_CHECKED_ENV``): they would give the same answer, and
    cost the driver seconds of torch and timm imports it otherwise never needs. A search skips them
    too where this machine passed the same checks before (``_checked_models``). The data is
    checked again: the cluster's files are not the client's.
    """
    vouched = os.environ.get(MODELS_CHECKED_ENV)
    models_checked = (vouched is not None and vouched == models_fingerprint(spec)) or remembered(spec)
    if not models_checked:
        check_models(spec)
    total = planned_trials(spec)
    data, cache = check_data(spec)
    if not models_checked:
        check_input_size(spec)
        remember(spec)
    return Plan(total, data, cache)


def planned_trials(spec: SearchSpec) -> int:
    """How many trials will run; for grid search, the grid size (checked against num_samples)."""
    if spec.search.searcher != "grid":
        return spec.search.num_samples
    size = grid_size(spec.space)
    if size > spec.search.num_samples:
        raise SpecError(
            "search.num_samples", f"the grid has {size} points, more than num_samples={spec.search.num_samples}"
        )
    return size
