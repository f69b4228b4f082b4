"""What every trial of one search shares: the spec's own records, plus how this process runs them.

A trial reads ``settings.search.max_epochs`` and ``settings.resources.lr_scaling`` under the
names the spec gives them (one name per setting: spec key = MLflow param = field), instead of
a copy of each field under another name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tunefleet.spaces import CheckpointSettings, DataSpec, Resources, SearchSettings, SearchSpec

from ._upload import RunLink

Amp = Literal["auto", "off"]


@dataclass(frozen=True)
class TrialSettings:
    """The spec's sections a trial needs, and runtime choices that are not part of a spec."""

    data: DataSpec = field(default_factory=DataSpec)
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    device: str = "cpu"  # "cuda" when the trial reserves GPUs; a DDP worker pins its own "cuda:N"
    amp: Amp = "auto"  # auto: bf16 where the GPU has it, else fp16 with loss scaling; off on CPU
    patience: int | None = None  # overrides the recipe's early-stopping patience when set
    run_link: RunLink | None = None  # set: the trial uploads its best checkpoint through the MLflow server

    @classmethod
    def from_spec(cls, spec: SearchSpec, **runtime: Any) -> TrialSettings:
        """The settings of ``spec``'s trials; a relative data root is made absolute here, because
        Ray runs each trial in a folder of its own."""
        data = spec.data.with_absolute_root()
        device = "cuda" if spec.resources.gpus_per_worker > 0 else "cpu"
        return cls(data=data, search=spec.search, resources=spec.resources, device=device, **runtime)

    @property
    def checkpoint_every(self) -> int:
        """Epochs between ``last/`` checkpoints (``search.checkpoint_every``; best and final always saved)."""
        return self.search.checkpoint_every

    @property
    def workers(self) -> int:
        return self.resources.workers_per_trial

    @property
    def threads(self) -> int:
        """torch threads per worker: the CPUs it reserved, at least one."""
        return max(1, int(self.resources.cpus_per_worker))

    def on_device(self, device: str) -> TrialSettings:
        return replace(self, device=device)

    def checkpoint_settings(self) -> CheckpointSettings:
        """What a checkpoint's ``meta.json`` records of these settings."""
        # Every CheckpointSettings field is one of these settings, under the same name.
        return CheckpointSettings(**{name: getattr(self, name) for name in CheckpointSettings.model_fields})
