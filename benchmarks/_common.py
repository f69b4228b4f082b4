"""Helpers shared by the benchmark scripts: the machine line, RESULTS.md appends, specs, Ray.

The scripts run as ``python benchmarks/NAME.py`` (this folder is then first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
DEFAULT_PEERS = HERE.parent.parent / "shared" / "peers"


def machine() -> str:
    """``x86_64 AMD EPYC, 2 cores, 24 GiB, no GPU`` from lscpu / /proc/meminfo / torch."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except OSError:
        pass
    mem = ""
    try:
        kib = int(
            next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
        )
        mem = f", {round(kib / 2**20)} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{platform.machine()} {model}, {os.cpu_count()} cores{mem}, {gpu}"


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


# Taken when a script starts (it imports this module first), before it loads the machine itself.
_LOAD_AT_START = _load()


def load_average() -> str:
    """The 1-minute load average when the script started, and now (the machine is shared: a load
    above the core count means noisy numbers)."""
    return f"{_LOAD_AT_START} at start, {_load()} at end"


def commit() -> str:
    """The measured tunefleet commit (``+dirty`` when the tree has uncommitted changes);
    ``$TUNEFLEET_COMMIT`` where the tree is a copy without .git (a lent GPU machine's)."""
    if os.environ.get("TUNEFLEET_COMMIT"):
        return os.environ["TUNEFLEET_COMMIT"]
    git = ["git", "-C", str(HERE.parent)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except OSError:
        return "unknown commit"
    return f"commit {head}{'+dirty' if dirty.stdout.strip() else ''}"


def heading(title: str, detail: str) -> str:
    stamp = f"{machine()} · {commit()} · load {load_average()}"
    return f"### {time.strftime('%Y-%m-%d')} · {title}\n\n{stamp} · {detail}\n"


def append(text: str, write: bool) -> None:
    """Print ``text`` and, unless ``write`` is false, append it to RESULTS.md."""
    print(text)
    if write:
        with open(RESULTS, "a") as f:
            f.write("\n" + text)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def bench_doc(**search: Any) -> dict[str, Any]:
    """The peers' workload as a tunefleet spec document (digits_bench.yaml), ``search`` overridden."""
    doc = yaml.safe_load((HERE / "digits_bench.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["search"].update({k: v for k, v in search.items() if v is not None})
    return doc


def quiet_ray() -> None:
    """Start tunefleet's local Ray (the same config as the CLI) in this process."""
    from tunefleet.search import start_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    start_ray(None)


def recorder() -> Any:
    """A Ray Tune callback that keeps every result with its arrival time on the driver (``.rows``)."""
    from ray.tune import Callback

    class Recorder(Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            self.rows.append({"t": time.perf_counter(), "trial": trial.trial_id, **result})

    return Recorder()


def parse_or_run_child(parser: argparse.ArgumentParser, child: Callable[[Any], None]) -> argparse.Namespace | None:
    """Add ``--child`` and ``--no-write`` to ``parser`` and parse. Called as ``in_fresh_process``'s
    child, run ``child`` on its JSON payload and return None; else return the arguments."""
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print the table, do not append to RESULTS.md")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return None
    return args


def rss_change_line(small: dict[str, float], large: dict[str, float], arm: str = "") -> str:
    """The verdict on peak RSS (with workers) when the folder doubles: the target is < 10 %."""
    change = large["peak_total_mib"] / small["peak_total_mib"] - 1
    return f"\ntarget < 10 % when the folder doubles{arm}: {change:+.1%} {verdict(abs(change) < 0.10)}"


def in_fresh_process(script: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``script --child PAYLOAD`` in a new interpreter (nothing imported or cached carries
    over between measurements) and return the JSON object its last line prints."""
    out = subprocess.run(
        [sys.executable, script, "--child", json.dumps(payload)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"{Path(script).name} {payload} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class PeakRss:
    """Samples the RSS of this process plus its children (loader workers) every 0.1 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak_total = self.peak_main = 0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            try:
                main = self.me.memory_info().rss
                total = main + sum(c.memory_info().rss for c in self.me.children(recursive=True))
            except Exception:  # a worker exiting between listing and reading
                continue
            self.peak_main, self.peak_total = max(self.peak_main, main), max(self.peak_total, total)
            time.sleep(0.1)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.thread.join()
        return {"peak_main_mib": self.peak_main / 2**20, "peak_total_mib": self.peak_total / 2**20}
