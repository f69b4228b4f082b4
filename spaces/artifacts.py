"""The JSON files tunefleet leaves beside a model, as typed records: a checkpoint's ``meta.json``
(``CheckpointMeta``) and an export's ``card.json`` (``ExportCard``).

Each is written with ``model_dump_json`` and read with ``model_validate_json`` in one place
(``tunefleet.trainables`` ``save_checkpoint`` / ``read_meta``; ``tunefleet.analysis`` export /
``predict``); every other room reads attributes (``meta.class_names``, ``card.members[0].weight``).
The keys on disk are the field names (or, where ``records`` names a key, its alias), unchanged from
the bare dicts they replace, so checkpoints and cards written before still load; fields added
since have defaults (a meta.json from before checksums has no ``sha256`` and no ``history``).
Unknown keys are ignored, so a newer file still reads. Non-finite floats are written as JSON's
``NaN``/``Infinity`` extension, as ``json.dumps`` wrote them.

``record_problem`` turns pydantic's first complaint into one line, for the reader's own error
(``CorruptCheckpoint`` naming the file, or ``SpecError``): a raw ``ValidationError`` never escapes.
"""

from __future__ import annotations

import reprlib
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import records as rec
from ._sections import DataSpec, Resources, SearchSettings

_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxdict, _ECHO.maxlist, _ECHO.maxstring, _ECHO.maxother = 1, 3, 3, 40, 40


class _Record(BaseModel):
    """Base of the file records: frozen, unknown keys ignored, keys by alias where one is given."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        ser_json_inf_nan="constants",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# ------------------------------------------------------------------ checkpoint meta.json


class CheckpointSettings(_Record):
    """The settings a trial ran with (``TrialSettings`` without what only lives in the process)."""

    data: DataSpec
    search: SearchSettings
    resources: Resources
    device: str = "cpu"
    amp: str = "auto"
    patience: int | None = None
    checkpoint_every: int = 1


class CheckpointMeta(_Record):
    """A checkpoint's ``meta.json``: what model it holds, on what data, how it was trained, and a
    SHA-256 of every other file of the checkpoint."""

    model: str = Field(description="timm model name")
    class_names: list[str]
    in_chans: int
    image_size: int
    mean: list[float] = Field(description="per-channel normalization the model expects on [0, 1] images")
    std: list[float]
    recipe: dict[str, Any] = Field(description="the resolved recipe (tunefleet.spaces.resolve)")
    settings: CheckpointSettings
    workers: int = 1
    effective_batch_size: int | None = Field(None, alias=rec.EFFECTIVE_BATCH_SIZE)
    effective_lr: float | None = Field(None, alias=rec.EFFECTIVE_LR)
    data_skipped: int = 0
    data_cache: Literal["memory", "stream"] | None = None
    loader_workers: int | None = None
    epoch: int
    metrics: dict[str, float] = Field(description="this epoch's report")
    history: list[dict[str, float]] = Field(
        default_factory=list, alias=rec.HISTORY_KEY, description="every epoch's report so far"
    )
    checksums: dict[str, str] | None = Field(
        None, alias=rec.CHECKSUMS_KEY, description="file name -> sha256 hex; None: written before checksums"
    )

    @field_validator("checksums", mode="before")
    @classmethod
    def _file_names_to_hex(cls, value: Any) -> Any:
        valid = isinstance(value, dict) and all(
            isinstance(k, str) and "/" not in k and k != rec.META and isinstance(v, str) for k, v in value.items()
        )
        if value is not None and not valid:
            raise PydanticCustomError("checksums", "not a map of file name to sha256 hex")
        return value

    def stamped(self, epoch: int, metrics: dict[str, float], history: list[dict[str, float]]) -> CheckpointMeta:
        """The same trial's meta at ``epoch`` (a trial builds its meta once and stamps each epoch)."""
        return self.model_copy(update={"epoch": epoch, "metrics": dict(metrics), "history": list(history)})

    def with_checksums(self, checksums: dict[str, str]) -> CheckpointMeta:
        return self.model_copy(update={"checksums": dict(checksums)})


# ------------------------------------------------------------------ export card.json

SCALE = "pixel / 255; normalization is inside the graph"


class Preprocessing(_Record):
    """How to turn an image file into the graph's input, as the search's loaders did."""

    mode: Literal["L", "RGB"] = Field(description="PIL mode to convert to")
    size: int = Field(description="resized to size x size")
    resize: str = Field(description="PIL resampling filter name")
    scale: str = SCALE


class GraphInput(_Record):
    name: str
    shape: tuple[str, int, int, int] = Field(description='["batch", channels, height, width]')
    dtype: str

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def size(self) -> int:
        return self.shape[2]


class GraphOutput(_Record):
    name: str
    meaning: str


class ClassScores(_Record):
    name: str
    precision: float
    recall: float
    f1: float
    support: int


class Scores(_Record):
    """A classifier's (or the ensemble's) test-split metrics (``tunefleet.analysis.classifier_metrics``)."""

    n: int
    acc: float
    # Only with more than five classes (top-5 of five is always right); absent from the JSON otherwise.
    top5_acc: float | None = Field(None, exclude_if=lambda v: v is None)
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    roc_auc_classes: int
    nll: float
    ece: float
    class_names: list[str]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]


class MemberCard(_Record):
    """One trial of the ensemble."""

    run_id: str
    name: str
    weight: float | None = Field(description="share of the averaged probabilities (0: left out); None: stacked")
    recipe: dict[str, Any]
    epoch: int  # the best epoch: the member's weights
    # How many epochs the trial trained (more than ``epoch`` when it went on without improving;
    # fewer than the search's max_epochs when a scheduler stopped it). None on older cards.
    epochs_trained: int | None = None
    # The search metric at that epoch. In card.json it is keyed by the metric's name ("val_acc": ...);
    # ``ExportCard`` moves it there and back.
    score: float | None = None
    test: Scores


class OnnxParity(_Record):
    file: str
    opset: int
    max_abs_diff_vs_torch: float


class ServingCard(_Record):
    """What running the graph needs: a registered model keeps it as its MLmodel metadata
    (``records.CARD_METADATA_KEY``), and ``predict`` reads this part of either card."""

    preprocessing: Preprocessing
    class_names: list[str]
    input: GraphInput
    output: GraphOutput
    method: str
    metric: str
    search_run_id: str


class CardOrigin(_Record):
    """Where an ensemble comes from: the search it was exported from and how that search ranked."""

    experiment: str
    experiment_id: str
    search_run_id: str
    tracking_uri: str
    metric: str
    mode: str


class Variant(_Record):
    """The ensemble's graph in one precision, as measured on this machine's CPU in onnxruntime."""

    precision: str = Field(description="fp32 | fp16 | int8")
    test_acc: float
    agreement_with_fp32: float = Field(description="share of test images given fp32's class")
    max_abs_diff_vs_fp32: float = Field(description="largest class-probability difference from fp32")
    latency_ms_batch_1: float
    latency_ms_batch_n: float
    batch_n: int
    file_bytes: int


class Distilled(_Record):
    """How the shipped model was distilled from the ensemble (``export --distill``): the student,
    its training, and the teacher it replaces, scored and timed as the student is."""

    student: str = Field(description="timm model name")
    initialized_from: str = Field(description="the member whose weights it started from, or 'recipe'")
    epochs: int
    best_epoch: int
    temperature: float
    alpha: float = Field(description="the soft targets' share of the loss")
    val_acc: float
    run_id: str = Field(description="the MLflow run of the distillation, under the search run")
    teacher_method: str
    teacher_test: Scores
    teacher_latency_ms_batch_1: float
    teacher_file_bytes: int


class ExportCard(CardOrigin):
    """An export's ``card.json``: where the ensemble came from, how to feed it, how it scores.
    ``ensemble`` scores the graph as shipped, in ``precision``; ``onnx`` is the fp32 graph's
    parity with PyTorch, checked before any conversion; ``variants`` measures fp32 and the
    shipped precision (empty on cards written before precisions)."""

    created: str
    method: str
    combination: dict[str, Any] = Field(description="facts about the fit of the combination")
    input: GraphInput
    preprocessing: Preprocessing
    output: GraphOutput
    class_names: list[str]
    members: list[MemberCard]
    ensemble: Scores
    onnx: OnnxParity
    precision: str = "fp32"
    variants: list[Variant] = []
    # Set: the graph is one student, not the members; absent from an ensemble's card.json.
    distilled: Distilled | None = Field(None, exclude_if=lambda v: v is None)

    @model_validator(mode="before")
    @classmethod
    def _scores_from_metric_keys(cls, data: Any) -> Any:
        if not (
            isinstance(data, dict) and isinstance(data.get("metric"), str) and isinstance(data.get("members"), list)
        ):
            return data
        metric = data["metric"]
        members = [
            {("score" if k == metric else k): v for k, v in m.items()} if isinstance(m, dict) else m
            for m in data["members"]
        ]
        return {**data, "members": members}

    @model_serializer(mode="wrap")
    def _scores_under_metric_keys(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        if isinstance(out, dict) and isinstance(out.get("members"), list):
            out["members"] = [{(self.metric if k == "score" else k): v for k, v in m.items()} for m in out["members"]]
        return out

    def serving(self) -> ServingCard:
        """The part of the card ``predict`` needs (every ``ServingCard`` field is one of the card's)."""
        return ServingCard(**{name: getattr(self, name) for name in ServingCard.model_fields})


# ------------------------------------------------------------------ errors


def record_problem(err: ValidationError) -> str:
    """pydantic's first complaint about a file record, in one line without the file's name:
    ``invalid JSON (...)``, ``'epoch' is missing``, ``invalid 'sha256': not a map of ...``."""
    errors = err.errors(include_url=False)
    # A wrong value says more than a missing one (a file cut short misses every later field).
    first = next((e for e in errors if e["type"] != "missing"), errors[0])
    kind, loc, msg = first["type"], first["loc"], first["msg"]
    path = ".".join(str(part) for part in loc)
    if kind == "json_invalid":
        return f"invalid JSON ({msg.removeprefix('Invalid JSON: ')})"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"not a JSON object but {type(first.get('input')).__name__}"
    if kind == "missing":
        return f"{path!r} is missing"
    if kind == "checksums":
        return f"invalid {path!r}: {msg}"
    return f"invalid {path!r}: {msg.removeprefix('Value error, ')}, got {_ECHO.repr(first.get('input'))}"
