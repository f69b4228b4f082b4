"""``examples/quickstart.ipynb`` runs top to bottom in a real Jupyter kernel (nbclient), as a user
runs it: a search on digits, its trials and report inline, an export, predictions on known digits.
The notebook's own cells assert what a user would look at; this test checks what they displayed.
It is stored without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def _shown(cell) -> str:
    """Everything a cell put on screen: streams, and each result's HTML or text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/html") or output.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    shown = {cell.source.splitlines()[0]: _shown(cell) for cell in cells}
    assert "Search('quickstart'" in shown["search = tunefleet.tune(spec)"]
    assert shown["trials = search.trials()"].count("</tr>") == 5  # the header and four trials
    assert shown["report = search.report()"].count('<img src="data:image/png;base64,') >= 5
    assert "test accuracy" in shown["model = search.export(top_k=2)"]
    assert shown["import numpy as np"].count("&lt;image") == 10  # ten predictions, one per known digit
    assert (tmp_path / "exports" / "quickstart" / "ensemble.onnx").is_file() and (tmp_path / "mlflow.db").is_file()
