"""Every command answers bad input before it imports Ray or torch (or MLflow, unless it read the
store to answer): one real ``tunefleet`` process
per command (the other bad-input tests run the CLI in-process, where those modules may already be
loaded). Each process prints, after the command's own exit, which heavy modules it had loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunefleet.spaces import SpecError

HEAVY = ("ray", "torch")  # seconds to import each
# MLflow (about a second) loads only where a command reads the store to answer, or (replay) reads
# the spool with the module that writes it to MLflow.
READS_STORE = {"report", "resume", "replay"}
# After the command returns, print which heavy modules it loaded, then exit with its code.
PROBE = (
    "import json, sys\n"
    "from tunefleet.search.cli import run\n"
    "code = run(sys.argv[1:])\n"
    f"print(json.dumps(sorted(m for m in {(*HEAVY, 'mlflow')!r} if m in sys.modules)))\n"
    "sys.exit(code)\n"
)
BAD_SPEC = "name: x\nspace: {lr: [1, 2\n"

# command line -> what the one error line names
CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "search": (("search", "bad.yaml"), "not valid YAML"),
    "submit": (("submit", "bad.yaml", "--address", "http://127.0.0.1:9"), "not valid YAML"),
    "export": (("export", "x", "--top-k", "0"), "--top-k"),
    "trials": (("trials", "x", "--format", "xml"), "--format"),
    "predict": (("predict", "models:/x/1", "a.png", "--format", "xml"), "--format"),
    "report": (("report", "nothing-here"), "no experiment 'nothing-here'"),
    "resume": (("resume", "nothing-here"), "no experiment 'nothing-here'"),
    "status": (("status",), "tunefleet up"),
    "logs": (("logs", "tunefleet-x"), "tunefleet up"),
    "stop": (("stop", "tunefleet-x"), "tunefleet up"),
    "replay": (("replay", "missing.jsonl"), "missing.jsonl"),
    "spaces": (("spaces", "show", "defualt"), "defualt"),
    "usage": (("search",), "Missing argument"),
    "fit": (("fit", "digits", "--time", "5s"), "--time"),  # the whole plan of digits, then too short
    "fit folder": (("fit", "no-such-folder"), "no such folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_command_answers_bad_input_before_loading_ray_or_torch(case, tmp_path):
    args, needle = CASES[case]
    (tmp_path / "bad.yaml").write_text(BAD_SPEC)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded == (["mlflow"] if case in READS_STORE else []), f"{case} imported {loaded} before answering"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "tunefleet-runs").exists()


# A submitted job's driver: the client passed the model checks (``submit`` sets the fingerprint).
JOB_PREFLIGHT = (
    "import sys\n"
    "from tunefleet.search._preflight import preflight\n"
    "from tunefleet.spaces import load_spec\n"
    "plan = preflight(load_spec(sys.argv[1]))\n"
    "print(plan.trials, 'timm' in sys.modules, 'torch' in sys.modules)\n"
)


@pytest.mark.parametrize("fingerprint", ["same", "other", None])
def test_a_job_driver_skips_only_the_model_checks_its_client_passed(fingerprint, tmp_path):
    from tunefleet.search._defaults import MODELS_CHECKED_ENV, models_fingerprint
    from tunefleet.spaces import load_spec

    sent = load_spec(Path(__file__).resolve().parents[2] / "examples" / "digits.yaml")
    spec_file = tmp_path / "spec.yaml"  # as the job gets it: the client's spec, written out
    spec_file.write_text(sent.to_yaml())
    env = {k: v for k, v in os.environ.items() if k != MODELS_CHECKED_ENV}
    env["TUNEFLEET_CACHE_DIR"] = str(tmp_path / "cache")  # nothing remembered from other tests
    if fingerprint is not None:  # "other": checked on the client, but for another spec or versions
        same = models_fingerprint(sent)
        assert same is not None  # tunefleet, timm and torch are installed with their metadata
        env[MODELS_CHECKED_ENV] = same if fingerprint == "same" else "0" * 64
    result = subprocess.run(
        [sys.executable, "-c", JOB_PREFLIGHT, str(spec_file)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    trials, timm_loaded, torch_loaded = result.stdout.split()
    assert trials == str(sent.search.num_samples)  # the rest of the preflight ran either way
    skipped = fingerprint == "same"
    assert (timm_loaded, torch_loaded) == (("False", "False") if skipped else ("True", "True"))


def test_model_checks_passed_once_are_remembered_and_failures_never(tmp_path, monkeypatch):
    """The second preflight of the same models and size skips the model checks; another size is
    checked again, and a model that failed is refused every time (nothing recorded for it). The
    job-driver test above shows that skipping them leaves timm and torch unimported."""
    from tunefleet.search import _preflight
    from tunefleet.spaces import spec_from_dict

    monkeypatch.setenv("TUNEFLEET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TUNEFLEET_MODELS_CHECKED", raising=False)
    checked: list[int] = []
    real = _preflight.check_models

    def counted(spec):
        checked.append(spec.data.image_size)
        real(spec)

    monkeypatch.setattr(_preflight, "check_models", counted)
    doc = {"name": "x", "data": {"kind": "digits", "image_size": 32}, "space": {"model": {"choice": ["test_resnet"]}}}
    for size in (32, 32, 48):
        _preflight.preflight(spec_from_dict({**doc, "data": {"kind": "digits", "image_size": size}}))
    assert checked == [32, 48]
    assert len(list((tmp_path / "cache" / "checked-models").glob("*.json"))) == 2
    bad = spec_from_dict({**doc, "space": {"model": {"choice": ["test_resnet", "no_such_model"]}}})
    for _ in range(2):
        with pytest.raises(SpecError, match="unknown timm model 'no_such_model'"):
            _preflight.preflight(bad)
    assert checked == [32, 48, 32, 32] and len(list((tmp_path / "cache" / "checked-models").glob("*.json"))) == 2
