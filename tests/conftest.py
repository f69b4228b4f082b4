"""Shared helpers: run the real ``tunefleet`` CLI in a scratch directory, write specs there."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

# Session fixtures too expensive to start twice, and the files whose tests use them: ``make test``
# runs two xdist workers, and each file listed runs whole in the worker that holds its fixture
# (``SharedFixtureScheduling``); any other file is its own unit. xdist's own ``loadgroup`` cannot
# do this with pytest 9 (it rewrites a node id attribute pytest no longer reads).
# test_service.py and test_tracking_faults.py use no shared fixture but start servers of their
# own (a Ray head, MLflow servers): they run in the cluster's unit, after it, not beside it.
SHARED_FIXTURES = {"loopback_cluster": "cluster", "searched": "searched"}
SHARED_FILES = {
    "tests/search/test_cluster.py": "cluster",
    "tests/search/test_node_loss.py": "cluster",
    "tests/search/test_service.py": "cluster",
    "tests/search/test_tracking_faults.py": "cluster",
    "tests/search/test_end_to_end.py": "searched",
    "tests/analysis/test_after_search.py": "searched",
    "tests/analysis/test_api_after_search.py": "searched",
    "tests/analysis/test_report.py": "searched",
    "tests/analysis/test_pool.py": "searched",
    "tests/search/test_warm_start.py": "searched",
    "tests/search/test_resume_more.py": "searched",
}


def pytest_configure(config: pytest.Config) -> None:
    """One model-check cache for the session (``search/_checked_models.py``), never the user's: the
    first search of a model and size checks it, later ones skip, and every run starts cold. And the
    Ray token made once, before any xdist worker starts (see ``_one_ray_token``)."""
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        _one_ray_token()
    if not os.environ.get("TUNEFLEET_CACHE_DIR"):
        os.environ["TUNEFLEET_CACHE_DIR"] = tempfile.mkdtemp(prefix="tunefleet-cache-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop("TUNEFLEET_CACHE_DIR"), ignore_errors=True))


def _one_ray_token() -> None:
    """Make ``~/.ray/auth_token`` where there is none, the documented way (tunefleet's
    ``ray_token(generate=True)``: ``ray get-auth-token --generate``), before any test runs.

    On a fresh machine each new local ``ray.init()`` and each ``ray get-auth-token --generate``
    writes a token of its own when it finds none, so two workers starting at once could each write
    one: a cluster node started after the other's write holds a different token from its head and
    never joins (CI's "the worker node did not come up within 120 s")."""
    from tunefleet.search.service._cluster import ray_token

    where = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if not os.environ.get("RAY_AUTH_TOKEN") and not Path(where).is_file():
        ray_token(generate=True)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        """xdist's per-file scheduling, with the files that share a session fixture as one unit."""

        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SHARED_FILES.get(path, path)

    # In the order pytest_collection_modifyitems leaves them (long units first), not xdist's
    # default of the most tests first (--loadscope-reorder): that started the fit command's file
    # (75 quick plan cases and one 4-minute fit) first and files with a few long searches last,
    # and one worker ran on alone at the end (a simulation of the last suite's durations: 1343 s
    # as xdist orders, 1288 s in this order, 1278 s for a perfect split).
    config.option.loadscopereorder = False
    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every user of a shared fixture must be in a file listed with it (else a second worker would
    start another). The cluster's tests first: on two workers its long tests start at once on one
    while the other takes the rest; alone, the cluster starts first and stops after its last test
    (tests/search/conftest.py), idling beside no other test. Then the files with slow tests."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and SHARED_FILES.get(path) != group:
                raise pytest.UsageError(
                    f"{path} uses {fixture}: list it in SHARED_FILES as {group!r} (tests/conftest.py)"
                )
    # Then every file that holds a slow test, before the quick ones: xdist hands out whole files in
    # this order, so the minutes-long searches start early and the many quick files fill the gaps,
    # rather than one long search starting last while the other worker idles.
    # The session cluster's users come first of all, side by side in any selection: it is stopped
    # after the last of a run of them (tests/search/conftest.py), and a user after a gap would find
    # it stopped.
    slow_files = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(
        key=lambda item: (
            "loopback_cluster" not in getattr(item, "fixturenames", ()),
            item.get_closest_marker("cluster") is None,
            item.nodeid.split("::", 1)[0] not in slow_files,
        )
    )


# A small, fast spec: digits at 16x16, the tiny timm ResNet, a few epochs.
SMALL_SPEC: dict[str, Any] = {
    "name": "small",
    "data": {"kind": "digits", "image_size": 16},
    "model": "test_resnet",
    "space": {
        "lr": {"loguniform": [0.01, 0.08]},
        "batch_size": {"choice": [32, 64]},
        "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.85, 0.95]}}, "adamw": {}}},
    },
    "search": {"searcher": "optuna", "scheduler": "fifo", "num_samples": 4, "max_epochs": 4, "seed": 0},
}


@pytest.fixture
def small_spec() -> dict[str, Any]:
    return copy.deepcopy(SMALL_SPEC)


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(doc: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
        return path

    return write


def made_store_client(folder: Path) -> Any:
    """An ``MlflowClient`` of the search's ``folder/mlflow.db`` once its driver has made it, else None.

    A client opens (creates, migrates) its store when made: made before the driver's store exists,
    a test's client would race the driver to make it. tunefleet's readers wait for the file too."""
    from mlflow.tracking import MlflowClient

    path = folder / "mlflow.db"
    return MlflowClient(f"sqlite:///{path}") if path.exists() else None


def cli_in(folder: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``tunefleet ARGS`` as a user would, with ``folder`` as the working directory."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["COLUMNS"] = "160"
        return subprocess.run(
            [sys.executable, "-m", "tunefleet.search.cli", *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cli(tmp_path: Path):
    """``cli_in(tmp_path)``: each test's searches and files in its own folder."""
    return cli_in(tmp_path)


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``tunefleet ARGS`` in this process (``tunefleet.search.cli.run``, what ``main`` exits with),
    with ``tmp_path`` as the working directory; answers as ``cli`` does (returncode, stdout,
    stderr). For commands that answer without starting Ray: bad input, listings, read-backs.
    ``tests/search/test_cli_imports.py`` keeps one real subprocess per command, which proves
    each answers bad input before Ray or torch is imported."""
    from tunefleet.search.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COLUMNS", "160")

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()  # what came before this call is not its output
        code = run(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["tunefleet", *args], code, captured.out, captured.err)

    return call


@dataclass(frozen=True)
class Searched:
    folder: Path  # the search's working directory (mlflow.db, reports/ are here)
    uri: str
    output: str  # what the search printed
    cli: Callable[..., subprocess.CompletedProcess[str]]  # ``tunefleet ARGS`` in ``folder``


@pytest.fixture(scope="session")
def search_in(tmp_path_factory) -> Callable[..., Searched]:
    """``search_in(name, store="mlflow.db", **sections)``: one real search of ``SMALL_SPEC`` with
    ``sections`` replacing its top-level sections, run by the CLI in a new folder ``name``;
    ``store`` is the SQLite file the search records to there (the spec's ``tracking.uri`` must say
    so when it is not the default). For fixtures that share one search among several tests."""

    def search(name: str, store: str = "mlflow.db", **sections: Any) -> Searched:
        folder = tmp_path_factory.mktemp(name)
        (folder / store).parent.mkdir(parents=True, exist_ok=True)
        spec = {**copy.deepcopy(SMALL_SPEC), **sections}
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        run = cli_in(folder)
        result = run("search", "spec.yaml")
        assert result.returncode == 0, result.stdout + result.stderr
        return Searched(folder, f"sqlite:///{folder / store}", result.stdout, run)

    return search


@pytest.fixture(scope="session")
def searched(search_in) -> Searched:
    """One real, short search (``SMALL_SPEC``: four trials, all run to the end, with SGD's
    conditional momentum) for every test that only reads a search back or adds exports to it. Its
    report is refreshed after every ended trial while it runs."""
    return search_in(
        "searched",
        search={**SMALL_SPEC["search"], "max_epochs": 3},
        tracking={"report_every": 1, "report_interval_s": 0},
    )


# Image folders generated on the fly: colour-coded classes, uneven sizes.
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200), "owl": (200, 200, 40)}


def make_image_folder(
    root: Path,
    counts: dict[str, int],
    split: str | None = None,
    grayscale: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``counts[cls]`` PNG/JPEG images per class under ``root[/split]/cls``; return ``root``.

    Each class is a noisy blob of its own colour (brightness for grayscale) at a random size, so a
    tiny model can learn it in an epoch or two and images must be resized.
    """
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    for cls, n in counts.items():
        folder = base / cls
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array(COLOURS[cls], dtype=np.float64)
        for i in range(n):
            h, w = rng.integers(14, 40, size=2)
            img = colour + rng.normal(0, 25, size=(h, w, 3))
            arr = np.clip(img, 0, 255).astype(np.uint8)
            pil = Image.fromarray(arr).convert("L") if grayscale else Image.fromarray(arr)
            pil.save(folder / f"{cls}_{i:03d}.{'jpg' if i % 3 == 0 else 'png'}")
    return root


@pytest.fixture
def image_folder():
    """``make_image_folder`` as a fixture (tests here are not a package, so they cannot import it)."""
    return make_image_folder
