"""Which zoo models' pretrained weights can be loaded on this machine, so that ``fit`` fine-tunes
only where it can (and trains from scratch otherwise) instead of failing every trial.

timm loads a model's weights from the Hugging Face Hub through its local cache. A model counts
as loadable when its weights file is in that cache, or when the Hub answers (within
``TIMEOUT_S``; one request for all the models). An offline machine with an empty cache has
none, and says so in the plan. Needs timm (and so torch): the command calls it once the data is
known good, never for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable

TIMEOUT_S = 3.0
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _hub_id(name: str) -> str | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    return getattr(cfg, "hf_hub_id", None) or None


def _cached(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in WEIGHT_FILES)


def _hub_answers(hub_id: str) -> bool:
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(hub_id, timeout=TIMEOUT_S)
    except Exception:  # offline, DNS, timeout, HF_HUB_OFFLINE: all mean "not from here"
        return False
    return True


def loadable_weights(names: Iterable[str]) -> frozenset[str]:
    """The models among ``names`` whose pretrained weights timm can load here."""
    hub_ids = {name: _hub_id(name) for name in names}
    cached = {name for name, hub in hub_ids.items() if hub and _cached(hub)}
    rest = [(name, hub) for name, hub in hub_ids.items() if hub and name not in cached]
    if rest and _hub_answers(rest[0][1] or ""):
        cached |= {name for name, _ in rest}
    return frozenset(cached)
