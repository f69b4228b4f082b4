"""Multi-worker trials: one Tune trial runs data-parallel (DDP) training through Ray Train.

The Tune function trial starts a ``TorchTrainer`` whose workers run the same ``run_trial`` loop;
DDP averages gradients (gloo on CPUs, nccl on GPUs), each worker takes ``batch_size`` images per
step (effective batch = batch_size x workers) and the LR is scaled by the search's rule. Every
worker reports (Ray Train's report is collective); only rank 0 writes checkpoints. Ray's
``TuneReportCallback`` forwards each report to the Tune trial, so schedulers such as ASHA see
every epoch; the checkpoint arrives as a ``checkpoint_path`` entry in the result, since Ray Train
has already persisted it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._settings import TrialSettings
from ._upload import CheckpointUploader, where_am_i


def _worker_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    # Here, in the Train workers: the Tune trial that starts them never trains, and timm and the
    # loop (about 1.8 s) would be imported there for nothing.
    from ._trial import run_trial

    settings: TrialSettings = config["settings"]
    if settings.device.startswith("cuda"):
        settings = settings.on_device(str(ray.train.torch.get_device()))

    link = settings.run_link
    uploader = CheckpointUploader(link, config["trial_id"]) if link else None
    place = where_am_i()

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        if uploader is not None:  # only rank 0 writes checkpoints, so only it uploads
            uploader.after_report(metrics, checkpoint_dir)
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report({**metrics, **place}, checkpoint=checkpoint)

    run_trial(config["recipe"], settings, report)


def run_ddp_trial(recipe: dict[str, Any], settings: TrialSettings) -> None:
    """Run one trial on ``settings.workers`` Ray Train workers; must be called inside a Tune trial."""
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    context = tune.get_context()
    storage = context.get_storage()
    gpu = settings.device.startswith("cuda")
    res = settings.resources
    resources = {"CPU": res.cpus_per_worker} | ({"GPU": res.gpus_per_worker} if gpu else {})
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"recipe": recipe, "settings": settings, "trial_id": context.get_trial_id()},
        scaling_config=ScalingConfig(num_workers=settings.workers, use_gpu=gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(
            # Inside the experiment's folder on the same storage, so cluster runs share it too.
            name=f"ddp-{context.get_trial_id()}",
            storage_path=storage.experiment_fs_path,
            storage_filesystem=storage.storage_filesystem,
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # a Train V2 UserCallback
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            # Worker-group starts that time out waiting for resources are retried a few times
            # (other trials may free them); a worker that raises fails the trial at once.
            failure_config=FailureConfig(max_failures=0, controller_failure_limit=5),  # type: ignore[call-arg]  # V2
        ),
    )
    trainer.fit()
