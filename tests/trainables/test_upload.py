"""A trial's own upload of ``best/`` when the tracking server does not answer: the trial goes on,
and each report says the upload is owed, so the driver uploads the weights when the trial ends."""

from __future__ import annotations

import socket

from tunefleet.spaces import records as rec
from tunefleet.trainables import CheckpointUploader, RunLink


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


def test_a_failed_upload_does_not_fail_the_trial_and_is_reported_as_owed(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uploader = CheckpointUploader(RunLink(f"http://127.0.0.1:{_closed_port()}", "0" * 32), "trial-1")
    (tmp_path / rec.BEST).mkdir()
    (tmp_path / rec.BEST / rec.WEIGHTS).write_bytes(b"weights")

    improved = {"epoch": 1.0, rec.TEST_ACC: 0.9}
    uploader.after_report(improved, tmp_path)  # the server is down: no exception
    assert improved[rec.UPLOAD_PENDING_KEY] == 1.0 and uploader.pending

    later = {"epoch": 2.0}  # no new best, but the upload is still owed: tried again, still reported
    uploader.after_report(later, tmp_path)
    assert later[rec.UPLOAD_PENDING_KEY] == 1.0

    untouched = {"epoch": 3.0}
    CheckpointUploader(uploader.link, "trial-2").after_report(untouched, None)
    assert rec.UPLOAD_PENDING_KEY not in untouched  # nothing owed, nothing said
