"""The record: every name tunefleet writes to, and reads back from, MLflow and checkpoints.

Writers (``tunefleet.search`` tracking, ``tunefleet.trainables`` checkpoints) and readers
(``tunefleet.analysis``, the CLI, benchmarks, tests) import these names instead of repeating
literals, so the contract is one module. It imports nothing of tunefleet (or of torch, Ray or
MLflow), so any room can use it.

What a search leaves in MLflow:

- one *search run* per search (tag ``tunefleet.role = search``): the spec as ``spec.yaml``, every
  spec setting as a param named by its path in the spec (``search.metric``, ``data.image_size``),
  and at the end a summary (``trials_completed`` ... ``wall_s``, ``best_<metric>``);
- one *trial run* per trial, a child of the search run (``mlflow.parentRunId``, tag
  ``tunefleet.role = trial``): the trial's recipe as params (``optimizer.momentum`` only where it
  applies), the per-worker and effective batch and LR, each epoch's ``EPOCH_METRICS`` at
  ``step = epoch``, a summary (``best_<metric>`` for every val/test metric of the best epoch,
  ``best_epoch``, ``epochs_trained``), the best checkpoint under ``checkpoint/``, and how it
  ended: the MLflow status and the ``tunefleet.outcome`` tag (``OUTCOME_STATUS``), with the
  reason in ``tunefleet.error`` for a failure.

A checkpoint a trial reports is a directory with ``best/`` (weights of the best epoch so far,
``meta.json``, val/test logits) and ``last/`` (the latest epoch plus training state to resume).
"""

from __future__ import annotations

# ------------------------------------------------------------------ MLflow tags
ROLE_TAG = "tunefleet.role"  # "search" on a search run, "trial" on a trial run, "export" on an export run
ROLE_SEARCH, ROLE_TRIAL = "search", "trial"
# ``tunefleet export --register``: a run nested under the search run that logs the registered model.
ROLE_EXPORT = "export"
# ``tunefleet export --distill``: a run nested under the search run, one per distilled student.
ROLE_DISTILL = "distill"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: nests trial runs under the search run in the UI
SPEC_NAME_TAG = "tunefleet.spec_name"  # the spec's name, on the search run
TRIAL_ID_TAG = "tunefleet.trial_id"  # Ray Tune's trial id, on a trial run
OUTCOME_TAG = "tunefleet.outcome"  # how a trial ended, in words (OUTCOME_STATUS keys)
ERROR_TAG = "tunefleet.error"  # a failed trial's exception line
BEST_TRIAL_TAG = "tunefleet.best_trial"  # the best trial's run name, on the search run
JOB_ID_TAG = "tunefleet.job_id"  # the Ray Job that ran the search (``tunefleet submit``), on the search run
# A warm-started search run: the experiments it learned from, and their trial runs it was handed.
WARM_START_TAG = "tunefleet.warm_start"
WARM_RUNS_TAG = "tunefleet.warm_runs"
# The driver of a search, on the search run: where it runs and when it last said it is alive, so a
# search whose driver is gone shows as interrupted; and Ray Tune's experiment path, to resume it.
DRIVER_HOST_TAG = "tunefleet.driver_host"
DRIVER_PID_TAG = "tunefleet.driver_pid"
DRIVER_STARTED_TAG = "tunefleet.driver_started"  # unix seconds the driver process started (pids are reused)
HEARTBEAT_TAG = "tunefleet.heartbeat"  # unix seconds
HEARTBEAT_EVERY_S = 30.0
TUNE_PATH_TAG = "tunefleet.tune_path"
# A search given more trials (``tunefleet resume --more``) runs them as a new Ray Tune experiment:
# the search run records how many times, and when the latest began (unix ms, as MLflow's start
# times), so a resume of that experiment tells its trials from the earlier ones.
EXTENSIONS_TAG = "tunefleet.extensions"
SEGMENT_START_TAG = "tunefleet.segment_start_ms"
# On every run the driver creates: a key made before the request, so a create retried after an
# ambiguous failure (or replayed from a spool) finds its run instead of making a second one.
CREATE_KEY_TAG = "tunefleet.create_key"
# Where a trial ran, on its trial run (updated if a restarted trial moves).
NODE_ID_TAG = "tunefleet.node_id"  # Ray node id
HOSTNAME_TAG = "tunefleet.hostname"
GPU_IDS_TAG = "tunefleet.gpu_ids"  # the GPUs Ray gave the trial ("" on CPU)
RESTARTS_TAG = "tunefleet.restarts"  # times a trial was restarted after a failure (search.max_failures)


def trials_filter(search_run_id: str) -> str:
    """MLflow's filter for the trial runs of a search (not its export runs, also nested under it)."""
    return f"tags.`{PARENT_RUN_TAG}` = '{search_run_id}' and tags.`{ROLE_TAG}` = '{ROLE_TRIAL}'"


# ------------------------------------------------------------------ how a trial ends
COMPLETED = "completed"  # ran its planned epochs (or stopped itself by patience)
STOPPED = "stopped_early"  # stopped by the scheduler (ASHA)
FAILED = "failed"  # raised
RUNNING = "running"  # not ended yet
INTERRUPTED = "interrupted"  # the search was stopped (Ctrl-C) while the trial ran
TIMED_OUT = "timed_out"  # reported nothing for ``search.trial_timeout``; stopped by the driver
# The MLflow run status that goes with each outcome.
OUTCOME_STATUS = {
    COMPLETED: "FINISHED",
    STOPPED: "KILLED",
    FAILED: "FAILED",
    INTERRUPTED: "KILLED",
    TIMED_OUT: "FAILED",
}

# ------------------------------------------------------------------ metrics
# What every epoch report of a trial carries; the driver logs exactly these, at step = epoch.
EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_acc",
    "val_precision",
    "val_recall",
    "val_f1",
    "lr",
    "images_per_s",
    "epoch_time_s",
    "per_worker_batch",  # PER_WORKER_BATCH_KEY: lower after an out-of-memory retry
    "grad_accum_steps",  # GRAD_ACCUM_KEY
    "unreadable_images",  # UNREADABLE
    "setup_s",  # SETUP_TIME: first epoch a trial (or its resumption) trains only
)
# What a trial's model costs to serve, measured once on its ONNX export in onnxruntime (CPU) when
# the search asks (search.measure_serving, or an objective names one); every report carries them.
LATENCY_MS = "latency_ms"  # median milliseconds of one run at batch 1
LATENCY_BATCH_MS = "latency_ms_batch"  # median milliseconds of one run at search.serving_batch
MODEL_MB = "model_mb"  # the exported graph's size in MB (1e6 bytes)
# The same two latencies on the trial's GPU (onnxruntime's CUDA provider, input from host memory as
# a request brings it), where the trial has a GPU and onnxruntime here can run on it.
LATENCY_GPU_MS, LATENCY_GPU_BATCH_MS = "latency_gpu_ms", "latency_gpu_ms_batch"
GPU_SERVING_METRICS = (LATENCY_GPU_MS, LATENCY_GPU_BATCH_MS)
SERVING_METRICS = (LATENCY_MS, LATENCY_BATCH_MS, MODEL_MB, *GPU_SERVING_METRICS)
# Images that could not be read in the epoch (streamed files that broke after the scan): skipped.
UNREADABLE = "unreadable_images"
# Seconds from the trial starting (or resuming) to its first training batch: data, model build,
# optimizer, loader start. Every trial pays it; short ASHA trials feel it most.
SETUP_TIME = "setup_s"
# The search run's params: which data path the trials use (memory or stream) and its size.
DATA_CACHE_PARAM, DATA_DECODED_GIB_PARAM = "data.cache_chosen", "data.decoded_gib"
# Where the trial runs, in every report (strings, not metrics): the driver turns them into tags.
NODE_ID_KEY, HOSTNAME_KEY, GPU_IDS_KEY = "node_id", "hostname", "gpu_ids"
# Only reports whose search metric improved (they carry a new best checkpoint) hold test metrics.
TEST_ACC = "test_acc"
# A trial retried after running out of memory trains with a smaller batch and accumulates
# gradients (same effective batch): every report carries both.
PER_WORKER_BATCH_KEY = "per_worker_batch"
GRAD_ACCUM_KEY = "grad_accum_steps"
# A trial whose upload of best/ to a tracking server failed says so in its reports; the driver
# then uploads (or spools) the best weights from the trial's checkpoint when it ends.
UPLOAD_PENDING_KEY = "best_upload_pending"
IS_LAST = "is_last"  # 1.0 on a trial's final report; a trial stopped from outside never sends it
# Which way each metric a search may rank by is better.
METRIC_MODES = {
    "val_acc": "max",
    "val_f1": "max",
    "val_precision": "max",
    "val_recall": "max",
    "val_loss": "min",
    "train_loss": "min",
}
BEST_PREFIX = "best_"


def best_key(metric: str) -> str:
    """The summary key of a metric's value at the best epoch: ``best_val_acc``."""
    return BEST_PREFIX + metric


BEST_EPOCH = "best_epoch"
EPOCHS_TRAINED = "epochs_trained"
# Search run summary.
TRIALS_COMPLETED = "trials_completed"
TRIALS_STOPPED_EARLY = "trials_stopped_early"
TRIALS_FAILED = "trials_failed"
WALL_S = "wall_s"
BEST_TRIAL_TEST_ACC = "best_trial_test_acc"

# ------------------------------------------------------------------ params
# Search run: every spec setting under its path in the spec (see ``SearchSpec.params``).
SEARCH_METRIC_PARAM = "search.metric"
SEARCH_MODE_PARAM = "search.mode"
# Trial run, besides the recipe: what the LR and batch become with several workers.
EFFECTIVE_BATCH_SIZE = "effective_batch_size"
EFFECTIVE_LR = "effective_lr"
TRIAL_ID_PARAM = "trial_id"

# ------------------------------------------------------------------ artifacts and checkpoints
SPEC_ARTIFACT = "spec.yaml"  # on the search run
CHECKPOINT_ARTIFACT_DIR = "checkpoint"  # on a trial run: the files of best/
BEST, LAST = "best", "last"  # the two checkpoints a trial reports
WEIGHTS = "model.safetensors"
META = "meta.json"
LOGITS = "logits.safetensors"
TRAINING_STATE = "training_state.pt"
REPORT_ARTIFACT_DIR = "report"  # on the search run: the report's PNGs and report.html
ERROR_ARTIFACT = "error.txt"  # on a failed or restarted trial run: each failure's traceback (Ray Tune's record)
HISTORY_KEY = "history"  # in meta.json: every epoch's report so far, to backfill a run after a driver died
CHECKSUMS_KEY = "sha256"  # in meta.json: {file name: sha256 hex} of every other file of the checkpoint
PREVIOUS_SUFFIX = ".prev"  # ``last.prev/``: the checkpoint before ``last/``, used when ``last/`` is corrupt
CHECKPOINT_PATH_KEY = "checkpoint_path"  # multi-worker trials: Ray's TuneReportCallback puts the path here

# An export: the ONNX graph and its card (what it is, how it scores, how to feed it images). A
# registered model keeps the part of the card ``predict`` needs in its MLmodel metadata.
ONNX_FILE = "ensemble.onnx"
CARD_FILE = "card.json"
CARD_METADATA_KEY = "tunefleet_card"

# ------------------------------------------------------------------ stores
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SQLITE_PREFIX = "sqlite:///"


def sqlite_file(uri: str) -> str | None:
    """The database file behind a ``sqlite:///`` URI, or None for other stores."""
    return uri[len(SQLITE_PREFIX) :] if uri.startswith(SQLITE_PREFIX) else None
