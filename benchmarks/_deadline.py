"""gpu_check's rows under its ``--deadline`` (``run_check``): past it, the check running then ends
with ``OverTime``, at a point where an exception cannot leave a lock taken, and the rest are
skipped; a hang past every such point still ends the process.

An alarm that raised wherever it rang (as this first did) could land inside a DataLoader's queue
put with its lock taken; the check's cleanup then shut the loader's workers down through that lock
and waited forever (CI, stop 37: the deadline test's process printed nothing for 120 s).
"""

from __future__ import annotations

import faulthandler
import gc
import json
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol, TypeVar

import torch


class HasDeadline(Protocol):
    deadline: float  # perf_counter seconds


C = TypeVar("C", bound=HasDeadline)  # gpu_check's Ctx: its deadline, and what each check reads

# Code an exception must not land in: it can leave a lock taken (a DataLoader's index queue, an
# import's module lock), and the check's cleanup (its loader workers' shutdown) then waits forever.
UNSAFE = ("threading", "multiprocessing", "queue", "concurrent.", "torch.utils.data", "subprocess", "logging",
          "importlib", "_frozen_importlib", "selectors", "ray.")  # fmt: skip
TICK_S, HANG_GRACE_S = 0.05, 60.0  # past the deadline, the alarm rings every TICK_S until it can raise


class OverTime(BaseException):  # not an Exception: library code that catches those must not swallow it
    armed = False  # raised inside a check only: the table is printed all the same

    @staticmethod
    def alarm(_signum: int, frame: FrameType | None) -> None:
        if OverTime.armed and _safe_point(frame):
            OverTime.armed = False  # once: the next tick must not land in the check's own cleanup
            signal.setitimer(signal.ITIMER_REAL, 0)  # and no more ticks: every later check is skipped
            raise OverTime("past the --deadline")


def _safe_point(frame: FrameType | None) -> bool:
    """No frame of the interrupted stack runs thread, process, queue, DataLoader or import code
    (a search's Ray loop included: its trial_timeout ends it instead)."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(UNSAFE):
            return False
        frame = frame.f_back
    return True


def start_deadline(seconds: float) -> None:
    signal.signal(signal.SIGALRM, OverTime.alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, TICK_S)
    # A hang past every safe point (a deadlock in native code) still ends, printing every thread's stack.
    faulthandler.dump_traceback_later(seconds + HANG_GRACE_S, exit=True)


def stop_deadline() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()


def run_check(ctx: C, name: str, check: Callable[[C], tuple[Any, ...]], skip: str = "") -> dict[str, Any]:
    """One table row, printed as a JSON line. Past ``ctx.deadline`` (perf_counter seconds) the alarm
    ends the check running then; a check started past it is skipped."""
    row: dict[str, Any] = {"check": name, "setting": "", "images_per_s": None, "gpu_busy_pct": None, "note": ""}
    row["result"] = skip or ("skipped: deadline" if time.perf_counter() > ctx.deadline else "")
    try:
        if not row["result"]:
            OverTime.armed = True
            setting, rate, busy, problems, note = check(ctx)
            row |= {"setting": setting, "images_per_s": rate, "gpu_busy_pct": busy}
            row |= {"result": "FAIL" if problems else "ok", "note": "; ".join([*problems, note])}
    except (Exception, OverTime) as err:
        row |= {"result": "FAIL", "note": f"{type(err).__name__}: {err}".splitlines()[0][:240]}
    finally:  # a finished check's loader workers and GPU memory go now, not during the next check
        OverTime.armed = False
        gc.collect()
        try:
            torch.cuda.empty_cache()
        except Exception as err:  # a sticky CUDA error: its row says so, and the table still prints
            row |= {"result": "FAIL", "note": f"{row['note']}; after it: {type(err).__name__}: {err}"[:240]}
    print(json.dumps(row), flush=True)
    return row
