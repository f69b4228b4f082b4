"""``tunefleet up`` / ``submit --wait`` / ``status`` / ``down`` on this machine, as a user runs them,
and the service's bad input."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.cluster
@pytest.mark.slow
def test_up_submit_wait_status_down_runs_the_digits_demo(cli, tmp_path):
    demo = (EXAMPLES / "digits.yaml").read_text()
    assert "  max_epochs: 10" in demo
    (tmp_path / "digits.yaml").write_text(demo.replace("  max_epochs: 10", "  max_epochs: 3"))  # the demo, shorter
    ports = ["--ray-port", str(_free_port()), "--dashboard-port", str(_free_port()), "--mlflow-port", str(_free_port())]
    up = cli("up", "--cpus", "2", *ports)
    service = json.loads((tmp_path / ".tunefleet" / "service.json").read_text())
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert service["tracking_uri"] in up.stdout and service["dashboard"] in up.stdout
        assert service["dashboard"].startswith("http://127.0.0.1:")  # never on 0.0.0.0
        # MLflow's server without its GenAI job executor (a runner and Huey consumers): a search logs no jobs
        server = _session_commands(service["mlflow_pid"])
        assert any("mlflow" in c for c in server) and not any("huey" in c or "_job_runner" in c for c in server), server
        again = cli("up", *ports)
        assert again.returncode == 0 and "already up" in again.stdout

        done = cli("submit", "digits.yaml", "--num-samples", "2", "--wait", timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        job = re.search(r"submitted (tunefleet-\S+)", done.stdout).group(1)
        assert "best: t" in done.stdout and f"job {job}: SUCCEEDED" in done.stdout  # the usual progress lines
        # Followed to its end: the job's whole log was printed, once (the stream's tail read back whole).
        whole = cli("logs", job)
        assert whole.returncode == 0 and whole.stdout.strip() in done.stdout, whole.stderr
        assert done.stdout.count("open the results:") == 1

        status = cli("status")
        assert status.returncode == 0, status.stderr
        row = next(ln for ln in status.stdout.splitlines() if job in ln)
        assert "SUCCEEDED" in row and "val_acc=" in row

        client = MlflowClient(tracking_uri=service["tracking_uri"])
        exp = client.get_experiment_by_name("digits-demo")
        (search,) = client.search_runs([exp.experiment_id], f"tags.`{rec.JOB_ID_TAG}` = '{job}'")
        assert (
            search.info.status == "FINISHED"
            and search.data.metrics[rec.TRIALS_COMPLETED] + search.data.metrics[rec.TRIALS_STOPPED_EARLY] == 2
        )
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not _alive(service["ray_pid"]) and not _alive(service["mlflow_pid"])
    assert (tmp_path / ".tunefleet" / "mlflow.db").is_file()  # the store stays
    assert not (tmp_path / ".tunefleet" / "service.json").exists()
    assert "nothing was up" in cli("down").stdout
    # Ray's "current cluster" note no longer names the service, so a plain ray.init() here starts anew
    note = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    gcs_port = service["ray_address"].rsplit(":", 1)[1]
    assert not note.exists() or not note.read_text().strip().endswith(f":{gcs_port}")


def _session_commands(session: int) -> list[str]:
    """The command lines of the processes in ``session`` (the service starts each server in its own)."""
    commands = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):  # not a process, or gone meanwhile
            if os.getsid(int(entry.name)) == session:
                commands.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return commands


def test_submit_without_a_service_or_address_says_what_to_do(run_cli, write_spec, small_spec):
    line = _one_line_exit_2(run_cli("submit", str(write_spec(small_spec))))
    assert "tunefleet up" in line and "--address" in line


def test_submit_to_an_unreachable_address_fails_fast(run_cli, write_spec, small_spec, tmp_path):
    started = time.monotonic()
    line = _one_line_exit_2(
        run_cli("submit", str(write_spec(small_spec)), "--address", f"http://127.0.0.1:{_free_port()}",
            "--tracking-uri", "http://127.0.0.1:1", "--storage", str(tmp_path / "runs"))
    )  # fmt: skip
    assert line.startswith("error: --address: no Ray dashboard answers") and time.monotonic() - started < 45


def test_status_logs_stop_without_a_service(run_cli):
    for args in (("status",), ("logs", "tunefleet-x"), ("stop", "tunefleet-x")):
        assert "tunefleet up" in _one_line_exit_2(run_cli(*args))


def test_up_refuses_a_port_in_use(run_cli, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_exit_2(
            run_cli(
                "up", "--mlflow-port", str(port), "--ray-port", str(_free_port()), "--dashboard-port", str(_free_port())
            )
        )
    assert f"--mlflow-port: 127.0.0.1:{port} is in use" in line
    assert not (tmp_path / ".tunefleet" / "service.json").exists()


@pytest.mark.parametrize(
    ("store", "says"),
    [
        (
            "postgresql://tunefleet:hunter2-secret@127.0.0.1:{port}/mlflow",
            "cannot connect to postgresql://tunefleet:***@",
        ),
        ("mysql+nosuchdriver://db/mlflow", "use sqlite:///PATH or postgresql://"),
        ("sqlite:///no/such/folder/mlflow.db", "directory no/such/folder does not exist"),
    ],
)
def test_up_refuses_a_backend_store_it_cannot_use(run_cli, tmp_path, store, says):
    """An unreachable PostgreSQL, an unknown kind of store, a missing folder: one line naming
    --backend-store-uri, exit 2, nothing started or written, and the password never echoed."""
    store = store.format(port=_free_port())  # nothing listens there
    line = _one_line_exit_2(
        run_cli("up", "--backend-store-uri", store, "--mlflow-port", str(_free_port()),
                "--ray-port", str(_free_port()), "--dashboard-port", str(_free_port()))
    )  # fmt: skip
    assert line.startswith("error: --backend-store-uri") and says in line, line
    assert "hunter2" not in line
    assert not (tmp_path / ".tunefleet").exists()


def test_a_postgresql_backend_store_is_prepared_and_its_password_masked(postgres, tmp_path):
    """What ``up --backend-store-uri`` does before it starts the server, on a real PostgreSQL:
    the new database gets MLflow's tables (a client then works on it; preparing it again is
    harmless), the password is masked in what is recorded, and the server gets several workers
    on it. Concurrent first use is tests/search/test_tracking_faults.py's."""
    from mlflow.tracking import MlflowClient

    from tunefleet.search.service._backend import prepare_backend_store, redact, server_workers

    uri = postgres.new_database()
    prepare_backend_store(uri)
    prepare_backend_store(uri)  # again: cheap, nothing to migrate
    client = MlflowClient(uri)
    assert client.get_experiment(client.create_experiment("pg")).name == "pg"
    assert postgres.PASSWORD not in redact(uri) and redact(uri).startswith("postgresql://tunefleet:***@127.0.0.1:")
    assert server_workers(uri) == 2 and server_workers(f"sqlite:///{tmp_path / 'm.db'}") == 1
