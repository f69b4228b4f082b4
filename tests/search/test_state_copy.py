"""The whole copy of Ray Tune's experiment state that the driver keeps, and how ``resume`` puts it
back after a kill cut the state off (the end-to-end case is in test_resume's Ctrl-C test)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from tunefleet.search.resume._state_copy import COPY_PREFIX, keep_copy, repair_state


def _state(folder: Path, session: str, trials: int) -> Path:
    path = folder / f"experiment_state-{session}.json"
    path.write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": f"t{i}"}), "{}"] for i in range(trials)]}))
    return path


def _copies(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(COPY_PREFIX))


def test_the_copy_follows_the_newest_whole_state_and_never_takes_a_cut_one(tmp_path):
    assert keep_copy(str(tmp_path), {}) == {}  # nothing saved yet: nothing to copy
    state = _state(tmp_path, "2026-12-06_01-00-00", 2)
    seen = keep_copy(str(tmp_path), {})
    assert (tmp_path / f"{COPY_PREFIX}{state.name}").read_bytes() == state.read_bytes()
    assert keep_copy(str(tmp_path), seen) == seen  # unchanged: not read again
    whole = state.read_bytes()
    state.write_bytes(whole[:-5])  # Tune's syncer in the middle of writing it
    assert keep_copy(str(tmp_path), seen) == seen
    assert (tmp_path / f"{COPY_PREFIX}{state.name}").read_bytes() == whole
    later = _state(tmp_path, "2026-12-06_02-00-00", 3)  # a resumed driver's session
    keep_copy(str(tmp_path), seen)
    assert _copies(tmp_path) == [f"{COPY_PREFIX}{later.name}"]  # the earlier session's copy is superseded


def test_repair_puts_the_copy_back_over_a_cut_off_state(tmp_path):
    state = _state(tmp_path, "2026-12-06_01-00-00", 2)
    whole = state.read_bytes()
    keep_copy(str(tmp_path), {})
    assert repair_state(str(tmp_path)) is None  # a whole state is left alone
    state.write_bytes(whole[: len(whole) // 2])
    said = repair_state(str(tmp_path))
    assert said is not None and said.startswith("Ray Tune's saved experiment state was cut off")
    assert state.read_bytes() == whole


def test_a_newer_cut_off_session_is_moved_aside_for_the_copy_it_supersedes(tmp_path):
    older = _state(tmp_path, "2026-12-06_01-00-00", 2)
    keep_copy(str(tmp_path), {})
    newer = _state(tmp_path, "2026-12-06_02-00-00", 3)
    cut = newer.read_bytes()[:10]
    newer.write_bytes(cut)  # killed while its first save was copied: never copied whole
    assert repair_state(str(tmp_path)) is not None
    assert not newer.exists() and newer.with_name(f"{newer.name}.truncated").read_bytes() == cut  # kept, not lost
    assert json.loads(older.read_text())["trial_data"]


def test_the_searchers_pickle_is_kept_and_put_back_too(tmp_path):
    searcher = tmp_path / "searcher-state-2026-12-06_01-00-00.pkl"
    searcher.write_bytes(pickle.dumps({"trials": list(range(50))}))
    whole = searcher.read_bytes()
    _state(tmp_path, "2026-12-06_01-00-00", 2)
    keep_copy(str(tmp_path), {})
    searcher.write_bytes(whole[:-3])
    assert "searcher state" in (repair_state(str(tmp_path)) or "")
    assert searcher.read_bytes() == whole


def test_without_a_whole_copy_nothing_is_changed(tmp_path):
    state = _state(tmp_path, "2026-12-06_01-00-00", 2)
    state.write_bytes(state.read_bytes()[:7])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert repair_state(str(tmp_path)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert repair_state(str(tmp_path / "missing")) is None


def test_a_large_state_is_judged_by_its_end_not_parsed(tmp_path, monkeypatch):
    import tunefleet.search.resume._state_copy as state_copy

    monkeypatch.setattr(state_copy, "_PARSE_LIMIT", 100)  # as if the state were past 4 MiB
    state = tmp_path / "experiment_state-2026-12-06_01-00-00.json"
    # Tune's json.dump writes the run's start time last (search/resume/_state_copy.py)
    whole = json.dumps({"trial_data": [["x" * 300, "{}"]], "stats": {"start_time": 1796534338.85}}).encode()
    state.write_bytes(whole[: len(whole) // 2])
    assert keep_copy(str(tmp_path), {}) == {}  # cut off: no copy
    state.write_bytes(whole)
    keep_copy(str(tmp_path), {})
    assert (tmp_path / f"{COPY_PREFIX}{state.name}").read_bytes() == whole
    state.write_bytes(whole[:-2])
    assert repair_state(str(tmp_path)) is not None and state.read_bytes() == whole
