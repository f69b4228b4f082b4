"""``tunefleet spaces schema``: the JSON Schema accepts every shipped spec and refuses invalid ones."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tunefleet.spaces import BUILTIN_SPACES, SpecError, spec_from_dict, spec_json_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("benchmarks/*.yaml")])

# Specs the tests elsewhere refuse; the schema must refuse them as well (it cannot check
# everything load_spec does, e.g. low < high inside a range, so these are the ones it can).
INVALID = {
    "no name": {"space": {}},
    "unknown section": {"name": "x", "serch": {}},
    "unknown searcher": {"name": "x", "search": {"searcher": "bayes"}},
    "unknown scheduler": {"name": "x", "search": {"scheduler": "bohb"}},
    "zero samples": {"name": "x", "search": {"num_samples": 0}},
    "epochs as text": {"name": "x", "search": {"max_epochs": "ten"}},
    "unknown metric": {"name": "x", "search": {"metric": "accuracy"}},
    "bad budget": {"name": "x", "search": {"time_budget": "soon"}},
    "unknown data kind": {"name": "x", "data": {"kind": "cifar"}},
    "tiny images": {"name": "x", "data": {"image_size": 4}},
    "unknown lr rule": {"name": "x", "resources": {"lr_scaling": "cubic"}},
    "no workers": {"name": "x", "resources": {"workers_per_trial": 0}},
    "unknown optimizer": {"name": "x", "space": {"optimizer": "sgdd"}},
    "knob of another option": {"name": "x", "space": {"optimizer": {"choice": {"adamw": {"momentum": 0.9}}}}},
    "unknown knob": {"name": "x", "space": {"lrr": 0.1}},
    "zero batch": {"name": "x", "space": {"batch_size": {"choice": [0, 32]}}},
    "float batch range": {"name": "x", "space": {"batch_size": {"uniform": [8, 64]}}},
    "smoothing >= 1": {"name": "x", "space": {"loss": {"choice": {"label_smoothing": {"smoothing": 1.5}}}}},
    "unknown group knob": {"name": "x", "space": {"augmentation": {"hflp": True}}},
    "int for bool": {"name": "x", "space": {"augmentation": {"hflip": 1}}},
    "unknown domain": {"name": "x", "space": {"lr": {"unifrom": [0, 1]}}},
    "unknown base": {"name": "x", "space": {"base": "fastest"}},
    "empty choice": {"name": "x", "space": {"optimizer": {"choice": []}}},
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_validate(path, validator):
    doc = yaml.safe_load(path.read_text())
    assert not [e.message for e in validator.iter_errors(doc)]
    spec_from_dict(doc)  # and load_spec agrees


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_builtin_spaces_validate(name, validator):
    assert not [e.message for e in validator.iter_errors({"name": "x", "space": BUILTIN_SPACES[name]})]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_specs_are_refused_by_both(case, validator):
    doc = INVALID[case]
    with pytest.raises(SpecError):
        spec_from_dict(doc)
    assert list(validator.iter_errors(doc)), f"the schema accepts {doc}"


def test_schema_carries_the_help_texts():
    schema = spec_json_schema()
    search = schema["$defs"]["SearchSettings"]["properties"]
    assert "follows the metric" in search["mode"]["description"]
    assert "momentum" in json.dumps(schema["properties"]["space"]["properties"]["optimizer"])


def test_committed_schema_is_current():
    committed = json.loads((ROOT / "docs" / "spec.schema.json").read_text())
    assert committed == spec_json_schema(), "run: tunefleet spaces schema --out docs/spec.schema.json"


def test_schema_command_prints_it(run_cli):
    result = run_cli("spaces", "schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == spec_json_schema()
