"""cluster.yaml, checked offline: Ray's own config check, then what the file promises beyond it.

``ray up`` runs two offline steps before it talks to the cloud, and so does this test:
``prepare_config`` merges Ray's AWS defaults file into the config (top-level keys only: ours win),
prepends ``setup_commands`` to the head and worker lists, checks the docker section (none here)
and fills per-type worker counts; ``validate_config`` checks Ray's JSON schema (no unknown keys,
every node type with ``resources`` and ``node_config``, integer resource counts), that
``head_node_type`` is one of the types, and that the types' ``min_workers`` fit in ``max_workers``.
Neither needs boto3 or credentials. What only ``ray up`` finds out is not checked: that the AMI,
instance types, IAM profiles and quotas exist in the account, and that the commands succeed on a
real node. The commands are checked for bash syntax, in the wrapper Ray runs them in, and every
``ray start`` / ``mlflow server`` flag must be one the installed CLI knows.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private import util as ray_util

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
CLUSTER_DOC = ROOT / "docs" / "CLUSTER.md"

COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)
# The only values a user must fill in; docs/CLUSTER.md names each of them.
PLACEHOLDERS = {"YOUR-AMI-ID", "YOUR-BUCKET"}
# vCPUs and GPUs of the instance types used (AWS's published shapes): a typo'd `resources` would
# make the autoscaler launch a node that can never hold the trial it was launched for.
SHAPES = {"m5.2xlarge": (8, 0), "m6i.4xlarge": (16, 0), "g5.2xlarge": (8, 1), "g5.12xlarge": (48, 4)}
SHELL_OPERATORS = {">", ">>", "<", "&", "&&", "||", "|", ";"}


@pytest.fixture
def config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _prepared(config: dict[str, Any]) -> dict[str, Any]:
    return ray_util.prepare_config(copy.deepcopy(config))


def _commands(config: dict[str, Any], *lists: str) -> list[str]:
    return [command for name in lists or COMMAND_LISTS for command in config.get(name) or []]


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _args_after(command: str, program: tuple[str, ...]) -> list[str]:
    """The words after ``program`` (e.g. ``("ray", "start")``) up to the next shell operator."""
    words = shlex.split(command)
    for i in range(len(words)):
        if tuple(words[i : i + len(program)]) == program:
            args = []
            for word in words[i + len(program) :]:
                if word in SHELL_OPERATORS or word.endswith(";"):
                    break
                args.append(word)
            return args
    raise AssertionError(f"{' '.join(program)!r} not in {command!r}")


def _flags(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def _value(args: list[str], flag: str) -> str:
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {args}")


def _click_options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def _single(commands: list[str], needle: str) -> str:
    (found,) = [c for c in commands if needle in c]
    return found


def test_ray_accepts_the_config(config):
    """The same two calls `ray up` makes before it talks to AWS; no boto3, no network."""
    prepared = _prepared(config)
    ray_util.validate_config(prepared)
    # Our command lists replace the defaults file's (which bind the dashboard to 0.0.0.0 and
    # pip-install a Ray nightly); setup_commands come first on every node.
    assert prepared["head_setup_commands"] == config["setup_commands"] + config["head_setup_commands"]
    assert prepared["worker_setup_commands"] == config["setup_commands"]
    assert prepared["head_start_ray_commands"] == config["head_start_ray_commands"]
    assert set(prepared["available_node_types"]) == set(config["available_node_types"])


def _unknown_top_level_key(c: dict[str, Any]) -> None:
    c["head_setup_comands"] = ["echo typo"]


def _node_type_without_node_config(c: dict[str, Any]) -> None:
    del c["available_node_types"]["gpu_1x"]["node_config"]


def _fractional_gpu_count(c: dict[str, Any]) -> None:
    c["available_node_types"]["gpu_1x"]["resources"]["GPU"] = 0.5


def _unknown_node_type_key(c: dict[str, Any]) -> None:
    c["available_node_types"]["gpu_1x"]["max_worker"] = 3


def _head_type_not_defined(c: dict[str, Any]) -> None:
    c["head_node_type"] = "gpu"


def _min_workers_over_the_cap(c: dict[str, Any]) -> None:
    c["available_node_types"]["gpu_1x"]["min_workers"] = c["max_workers"] + 1


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        (_unknown_top_level_key, jsonschema.ValidationError),
        (_node_type_without_node_config, jsonschema.ValidationError),
        (_fractional_gpu_count, jsonschema.ValidationError),
        (_unknown_node_type_key, jsonschema.ValidationError),
        (_head_type_not_defined, ValueError),
        (_min_workers_over_the_cap, ValueError),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_"),
)
def test_ray_rejects_a_broken_copy(config, break_it: Callable[[dict[str, Any]], None], error: type[Exception]):
    """The check above can fail: each of these edits of the config is refused."""
    broken = copy.deepcopy(config)
    break_it(broken)
    with pytest.raises(error):
        ray_util.validate_config(_prepared(broken))


def test_nothing_listens_on_every_interface(config):
    commands = _commands(_prepared(config))
    assert not [c for c in commands if "0.0.0.0" in c]
    head_start = _single(config["head_start_ray_commands"], "ray start")
    assert _value(_args_after(head_start, ("ray", "start")), "--dashboard-host") == "127.0.0.1"
    mlflow = _args_after(_single(config["head_start_ray_commands"], "mlflow server"), ("mlflow", "server"))
    assert "hostname -I" in _value(mlflow, "--host")  # the head's private address, inside the VPC
    forwards = [c for c in commands if "socat TCP-LISTEN" in c]
    assert len(forwards) == 2  # the head's and each worker's
    assert all("TCP-LISTEN:5000,bind=127.0.0.1," in c for c in forwards)


def test_token_auth_on_every_node(config):
    starts = [c for c in _commands(config, "head_start_ray_commands", "worker_start_ray_commands") if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token ray start" in command
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_versions_are_the_clients(config):
    import ray

    setup = " ".join(config["setup_commands"])
    pins = dict(re.findall(r"\b(torch|torchvision|mlflow)==([\w.]+)", setup))
    assert pins["torch"] == version("torch").split("+")[0]
    assert pins["torchvision"] == version("torchvision").split("+")[0]
    assert pins["mlflow"] == version("mlflow")
    assert re.search(r'"ray\[default,tune\]==([\w.]+)"', setup).group(1) == ray.__version__
    (torch_pin,) = re.findall(r"^TORCH := (.+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert f"pip install -q {torch_pin.strip()}" in config["setup_commands"]
    # The basic-auth app needs the auth extra, at the same MLflow version, on the head.
    assert f'"mlflow[auth]=={version("mlflow")}"' in " ".join(config["head_setup_commands"])


def test_the_checkout_is_mounted_and_installed(config):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [
        "pyproject.toml",
        pyproject["project"]["readme"],
        *pyproject["tool"]["setuptools"]["package-dir"].values(),
    ]
    mounts = config["file_mounts"]
    for path in needed:
        assert mounts.get(f"~/tunefleet/{path}") == f"./{path}", path
    for remote, local in mounts.items():
        if remote.startswith("~/tunefleet/"):
            assert (ROOT / local).exists(), f"{local} (relative to where `ray up` runs: the repo root)"
    assert any(re.search(r"pip install .*-e ~/tunefleet\b", c) for c in config["setup_commands"])
    for skipped in (".venv", ".git", "mlflow.db", "mlruns", "tunefleet-runs", "exports"):
        assert skipped in config["rsync_exclude"]


def test_placeholders_are_marked_and_no_secret_is_in_the_file(config):
    text = CLUSTER_YAML.read_text()
    assert "your-org" not in text.lower()
    used = {m for s in _strings(config) for m in re.findall(r"YOUR-[A-Z0-9-]+", s)}
    assert used == PLACEHOLDERS
    doc = CLUSTER_DOC.read_text()
    assert all(p in doc for p in PLACEHOLDERS)
    # Credentials come from files mounted from the user's home, never from this file.
    assert not [s for s in _strings(config) if re.search(r'PASSWORD=(?!"\$)', s)]
    assert config["file_mounts"]["~/.config/tunefleet/mlflow.env"].startswith("~/")


def test_node_types_declare_their_shapes(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["min_workers"] == head["max_workers"] == 0
    vcpus, gpus = SHAPES[head["node_config"]["InstanceType"]]
    assert gpus == 0 and head["resources"]["GPU"] == 0  # no trial asking for a GPU lands on the head
    head_start = _args_after(_single(config["head_start_ray_commands"], "ray start"), ("ray", "start"))
    assert head["resources"]["CPU"] == int(_value(head_start, "--num-cpus")) <= vcpus
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert any(t["resources"]["GPU"] >= 1 for t in workers.values())
    for name, node_type in workers.items():
        shape = SHAPES.get(node_type["node_config"]["InstanceType"])
        assert shape, f"{name}: add its instance type's vCPUs and GPUs to SHAPES"
        assert (node_type["resources"]["CPU"], node_type["resources"]["GPU"]) == shape, name
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"], name


def test_mlflow_server_runs_on_the_head_only(config):
    from mlflow.cli import cli

    command = _single(config["head_start_ray_commands"], "mlflow server")
    args = _args_after(command, ("mlflow", "server"))
    assert _flags(args) <= _click_options(cli.commands["server"]), "a flag `mlflow server --help` does not list"
    assert "--serve-artifacts" in args
    assert _value(args, "--app-name") == "basic-auth"
    assert _value(args, "--artifacts-destination").startswith("s3://")
    home = f"/home/{config['auth']['ssh_user']}/"
    assert _value(args, "--backend-store-uri").startswith(f"sqlite:///{home}")
    assert not [c for c in _commands(config) if "mlflow server" in c and c != command]


def test_ray_start_flags_exist(config):
    from ray.scripts.scripts import start

    for command in _commands(config, "head_start_ray_commands", "worker_start_ray_commands"):
        if "ray start" in command:
            assert _flags(_args_after(command, ("ray", "start"))) <= _click_options(start), command
    head = _args_after(_single(config["head_start_ray_commands"], "ray start"), ("ray", "start"))
    assert "--head" in head and _value(head, "--autoscaling-config") == "~/ray_bootstrap_config.yaml"


def test_every_command_is_valid_bash_as_ray_runs_it(config):
    from ray.autoscaler._private.command_runner import _with_interactive

    prepared = _prepared(config)
    commands = _commands(prepared, "head_setup_commands", "worker_setup_commands", "head_start_ray_commands")
    commands += ray_util.with_head_node_ip(prepared["worker_start_ray_commands"], "10.0.0.1")
    for command in commands:
        wrapped = shlex.split(_with_interactive(command)[-1])[0]  # source ~/.bashrc; ... && (command)
        result = subprocess.run(["bash", "-n", "-c", wrapped], capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
