"""The Ray Tune adapter: a function trainable that resolves a trial's config and runs it.

Its own module because it is the one place that picks between an in-process trial (``_trial``)
and a data-parallel one (``_ddp``, which itself runs ``_trial``'s loop); kept here, neither of
those has to import the other back. Importing it loads neither torch nor timm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunefleet.spaces import resolve

from ._settings import TrialSettings
from ._upload import CheckpointUploader, where_am_i


def tune_trainable(config: dict[str, Any], settings: TrialSettings) -> None:
    """Ray Tune function trainable: ``config`` holds the flat sampled values of one trial.

    A trial Tune restarts (after a failure, or ``Tuner.restore``) resumes from its latest checkpoint;
    so does one that ran out of memory, with half the batch (``_oom.py``).
    """
    from ray import tune  # Ray is heavy to import; trials run in-process (tests, benchmarks) without it

    recipe = resolve(config)
    if settings.workers > 1:  # this process only starts Ray Train; its workers import the loop
        from ._ddp import run_ddp_trial

        run_ddp_trial(recipe, settings)
        return
    # The training loop (torch, timm) loads in the trial's process only: the search driver imports
    # this function to hand it to Tune, and must not pay seconds of imports for it.
    from ._oom import train_with_oom_retry

    link = settings.run_link
    uploader = CheckpointUploader(link, tune.get_context().get_trial_id()) if link else None
    place = where_am_i()

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        if uploader is not None:  # before Tune may stop the trial inside report()
            uploader.after_report(metrics, checkpoint_dir)
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report({**metrics, **place}, checkpoint=checkpoint)

    @contextlib.contextmanager
    def latest() -> Iterator[Path | None]:
        checkpoint = tune.get_checkpoint()  # the latest this trial reported, or the one it restarted from
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    train_with_oom_retry(recipe, settings, report, latest)
