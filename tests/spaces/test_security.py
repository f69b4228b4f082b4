"""A spec is data, and never holds a secret: both are refused at load, before anything starts.

Secret-shaped test values are assembled from pieces so that this file itself holds none that a
secret scanner would flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunefleet.spaces import FAMILIES, GROUPS, SECTIONS, SPEC_KEYS, TOP_KNOBS, SpecError, load_spec, spec_from_dict
from tunefleet.spaces._secrets import key_names_a_secret

PASSWORD = "hunter2-" + "Zq9"  # distinctive, so a message that echoes it is caught

# (where in the spec, the value) -> the kind of secret the message names
SECRET_VALUES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "http userinfo": (("tracking", "uri"), f"https://alice:{PASSWORD}@mlflow.example.com", "user:password@"),
    "database userinfo": (("tracking", "uri"), f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow", "user:password@"),
    "token in a query": (("tracking", "uri"), f"https://mlflow.example.com/?access_token={PASSWORD}", "access_token="),
    "signed s3 url": (
        ("data", "root"),
        f"https://b.s3.amazonaws.com/x.zip?X-Amz-Algorithm=AWS4&X-Amz-Signature={PASSWORD}",
        "X-Amz-Signature=",
    ),
    "aws key id": (("tracking", "experiment"), "AK" + "IA" + "Q3EGRZ7XJ2W4TNBK", "AWS access key id"),
    "aws session key id": (("name",), "AS" + "IA" + "Q3EGRZ7XJ2W4TNBK", "AWS access key id"),
    "github classic": (("space", "model"), "gh" + "p_" + "x7Kd2" * 7 + "Q", "GitHub token"),
    "github oauth": (("tracking", "experiment"), "gh" + "o_" + "x7Kd2" * 7 + "Q", "GitHub token"),
    "github fine-grained": (("tracking", "experiment"), "github" + "_pat_" + "11ABCDE" * 6, "GitHub token"),
    "sk- api key": (("tracking", "experiment"), "s" + "k-proj-" + "a8Fj3kL0" * 4, "sk-... API key"),
    "slack": (("search", "searcher"), "xo" + "xb-" + "1234567890-abcdefXYZ", "Slack token"),
    "hugging face": (("tracking", "experiment"), "h" + "f_" + "AbCdEfGhIj" * 4, "Hugging Face token"),
    "jwt": (("tracking", "experiment"), "ey" + "JhbGciOiJIUzI1NiJ9." + "ey" + "JzdWIiOiIxIn0.c2ln", "JWT"),
    "pem": (("tracking", "experiment"), "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow\n-----END", "PEM private key"),
    "bearer": (("tracking", "experiment"), "Bear" + "er " + "dG9rZW4tdmFsdWUtMTIzNDU2", "Bearer token"),
}

SECRET_KEYS = [
    ("tracking", "password"),
    ("tracking", "passwd"),
    ("tracking", "mlflow_token"),
    ("tracking", "GITHUB_TOKEN"),
    ("search", "api_key"),
    ("search", "apiKey"),
    ("search", "api-key"),
    ("resources", "aws_secret_access_key"),
    ("resources", "accessKeyId"),
    ("data", "secret"),
    ("data", "credentials"),
    ("data", "private_key"),
    ("serch", "credential"),  # an unknown section: refused as a secret, not as a typo
    ("space", "token"),  # an unknown knob: likewise
]

# Real settings that share a prefix or a word with a secret.
BENIGN: dict[str, dict[str, Any]] = {
    "sqlite store": {"tracking": {"uri": "sqlite:///mlflow.db"}},
    "local server": {"tracking": {"uri": "http://127.0.0.1:5000"}},
    "remote server": {"tracking": {"uri": "https://mlflow.example.com"}},
    "server with a path and query": {"tracking": {"uri": "https://mlflow.example.com/api?workspace=3#x"}},
    "file store": {"tracking": {"uri": "file:///tmp/mlruns"}},
    "databricks": {"tracking": {"uri": "databricks"}},
    "user without password": {"tracking": {"uri": "https://alice@mlflow.example.com"}},
    "port then path with @": {"tracking": {"uri": "http://127.0.0.1:5000/runs/@latest"}},
    "names near sk- and bearer": {"tracking": {"experiment": "task-finetune-resnet18-2024-sweep"}},
    "bearer as a word": {"name": "bearer of the best val_acc"},
    "upper-case run name": {"name": "AKIA-STYLE-NAME"},
    "long model name": {"model": "vit_base_patch16_224.augreg2_in21k_ft_in1k"},
    "model choice": {"space": {"model": {"choice": ["resnet18", "test_resnet", "efficientnet_b0"]}}},
    "relative folder": {"data": {"kind": "imagefolder", "root": "data/eyJ-images/train"}},
    "windows folder": {"data": {"kind": "imagefolder", "root": "C:/datasets/pets"}},
    "home folder": {"data": {"kind": "imagefolder", "root": "~/datasets/pets"}},
    "lr and batch": {"space": {"lr": {"loguniform": [1e-4, 1e-1]}, "batch_size": {"choice": [32, 64]}}},
}


def _doc(where: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "x"}
    if where[0] == "data":  # a data.* value must get as far as the secret check on a valid data section
        doc["data"] = {"kind": "imagefolder", "root": "imgs"}
    node = doc
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    return doc


def _refused(doc: Any, overrides: dict[str, dict[str, Any]] | None = None) -> SpecError:
    with pytest.raises(SpecError) as err:
        spec_from_dict(doc, overrides)
    assert "\n" not in str(err.value)
    return err.value


@pytest.mark.parametrize("case", sorted(SECRET_VALUES))
def test_secret_values_are_refused_without_echoing_them(case):
    where, value, kind = SECRET_VALUES[case]
    err = _refused(_doc(where, value))
    assert err.path == ".".join(where), str(err)
    assert "looks like it holds a credential" in str(err) and kind in str(err), str(err)
    assert PASSWORD not in str(err) and value not in str(err) and value[:12] not in str(err)


def test_a_password_in_the_tracking_uri_points_to_mlflows_variables():
    err = _refused(_doc(("tracking", "uri"), f"http://bob:{PASSWORD}@10.0.0.5:5000"))
    assert str(err) == (
        "tracking.uri: looks like it holds a credential (user:password@ in a URL); "
        "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead"
    )


@pytest.mark.parametrize(("section", "key"), SECRET_KEYS, ids=["/".join(k) for k in SECRET_KEYS])
def test_keys_named_like_a_credential_are_refused_wherever_they_are(section, key):
    err = _refused({"name": "x", section: {key: PASSWORD}})
    assert err.path == f"{section}.{key}" and "named like a credential" in str(err), str(err)
    assert PASSWORD not in str(err) and "did you mean" not in str(err)


def test_a_secret_nested_deep_or_in_a_list_is_found_by_its_path():
    ghp = "gh" + "p_" + "x7Kd2" * 7 + "Q"
    err = _refused({"name": "x", "space": {"optimizer": {"choice": {"sgd": {"momentum": {"choice": [0.9, ghp]}}}}}})
    assert err.path == "space.optimizer.choice.sgd.momentum.choice[1]" and ghp not in str(err)
    err = _refused({"name": "x", "space": {ghp: 1}})  # a secret as a key is not put in the path
    assert err.path == "space" and "as a key" in str(err) and ghp not in str(err)


def test_cli_overrides_are_checked_too():
    err = _refused({"name": "x"}, {"tracking": {"experiment": f"https://u:{PASSWORD}@h"}})
    assert err.path == "tracking.experiment" and PASSWORD not in str(err)


@pytest.mark.parametrize("case", sorted(BENIGN))
def test_near_misses_are_accepted(case):
    spec = spec_from_dict({"name": "x", **BENIGN[case]})
    assert spec.name


@pytest.mark.parametrize(
    "key", ["tokenizer", "max_tokens", "passage", "keys", "key_size", "monkey", "secretary", "access", "privacy"]
)
def test_words_that_merely_contain_a_secret_word_are_not_secret_keys(key):
    assert not key_names_a_secret(key)


def test_no_real_setting_is_named_like_a_secret():
    names = {*SPEC_KEYS, *TOP_KNOBS, *FAMILIES, *GROUPS}
    names |= {name for section in SECTIONS.values() for name in section.model_fields}
    names |= {name for options in FAMILIES.values() for option in options.values() for name in option}
    names |= {option for options in FAMILIES.values() for option in options}
    names |= {knob for knobs in GROUPS.values() for knob in knobs}
    assert not [name for name in names if key_names_a_secret(name)]


def test_a_recursive_document_ends_in_one_line():
    loop: list[Any] = []
    loop.append(loop)
    err = _refused({"name": "x", "search": {"searcher": loop}})
    assert err.path == "search.searcher" and len(str(err)) < 200


YAML_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/module:os",
]


@pytest.mark.parametrize("tag", YAML_TAGS, ids=lambda t: t.split()[0])
def test_yaml_python_tags_are_malformed_yaml_and_never_run(tag, tmp_path):
    marker = tmp_path / "MARKER"
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nsearch:\n  searcher: " + tag.format(marker=marker) + "\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert err.value.path == "spec" and "not valid YAML at line 3" in str(err.value), str(err.value)
    assert "tags that build Python objects are not allowed" in str(err.value)
    assert "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "root", ["s3://bucket/pets", "gs://bucket/pets", "https://example.com/pets.zip", "file:///data/pets", "hdfs://nn/p"]
)
def test_data_root_must_be_a_local_folder(root):
    err = _refused({"name": "x", "data": {"kind": "imagefolder", "root": root}})
    scheme = root.split("://")[0]
    assert str(err) == (
        f"data.root: must be a local folder, not a URL ({scheme}://); copy or mount the images on every node"
    )


# --- the same through the command line: exit code 2, one line, nothing written ---


def _assert_refused(result, needle: str, cwd: Path, secret: str | None = None) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    if secret:
        assert secret not in result.stderr + result.stdout
    assert not (cwd / "mlflow.db").exists() and not (cwd / "tunefleet-runs").exists()
    assert not (cwd / "mlruns").exists()


def test_search_refuses_secrets_in_the_spec_and_in_flags(run_cli, write_spec, small_spec, tmp_path):
    small_spec["tracking"] = {"uri": f"https://alice:{PASSWORD}@mlflow.example.com"}
    _assert_refused(run_cli("search", str(write_spec(small_spec))), "tracking.uri: looks like", tmp_path, PASSWORD)
    del small_spec["tracking"]
    token = "gh" + "p_" + "x7Kd2" * 7 + "Q"
    result = run_cli("search", str(write_spec(small_spec)), "--experiment", token)
    _assert_refused(result, "tracking.experiment: looks like", tmp_path, token)


def test_search_never_runs_a_yaml_tag(run_cli, write_spec, tmp_path):
    marker = tmp_path / "MARKER"
    spec = write_spec(f"name: x\nsearch: !!python/object/apply:os.system ['touch {marker}']\n")
    _assert_refused(run_cli("search", str(spec)), "not valid YAML", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "hf-hub:timm/resnet18.a1_in1k"])
def test_a_model_name_is_looked_up_never_imported(name, run_cli, write_spec, small_spec, tmp_path):
    small_spec["model"] = name
    _assert_refused(run_cli("search", str(write_spec(small_spec))), "space.model: unknown timm model", tmp_path)
