"""The Python API on the session's real search: ``tunefleet.open`` reads back what ``tunefleet
trials`` prints, the report shows inline, and ``Search.export`` / ``tunefleet.load`` hand back an
``Ensemble`` that predicts, scores and registers as the CLI's export does."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import tunefleet
from tunefleet.spaces import ExportCard
from tunefleet.trainables import load_data

pytestmark = pytest.mark.slow


def test_open_reads_the_trials_the_cli_prints(searched):
    found = tunefleet.open("small", tracking_uri=searched.uri)
    assert found.state == "finished" and found.metric == ("val_acc", "max")
    frame = found.trials()
    printed = json.loads(searched.cli("trials", "small", "--format", "json").stdout)
    assert len(frame) == 4 and list(frame["run_id"]) == [row["run_id"] for row in printed]
    assert found.best["run_id"] == printed[0]["run_id"]
    top = json.loads(searched.cli("trials", "small", "--top", "2", "--sort", "val_loss", "--format", "json").stdout)
    assert list(found.trials(sort="val_loss", top=2)["run_id"]) == [row["run_id"] for row in top]
    with pytest.raises(tunefleet.SpecError, match=r"^--sort: no metric 'nope'"):
        found.trials(sort="nope")


def test_the_report_shows_its_figures_inline(searched, tmp_path):
    report = tunefleet.open("small", tracking_uri=searched.uri).report(tmp_path / "report")
    figures = [f for f in report.files if f.suffix == ".png"]
    page = report._repr_html_()  # what Jupyter shows for a cell that ends with the report
    assert len(figures) >= 5 and page.count('<img src="data:image/png;base64,') == len(figures)
    assert report.summary and report.summary.split()[0] in page


def _test_split(root):
    """The digits test split as arrays, and as a labelled folder of the same images."""
    data = load_data("digits", 16, 0)
    for i, (image, label) in enumerate(zip(data.test.images, data.test.labels, strict=True)):
        folder = root / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return data, root


@pytest.fixture(scope="module")
def exported(searched, tmp_path_factory):
    """The search's two best trials exported through the API (and registered as small-api)."""
    found = tunefleet.open("small", tracking_uri=searched.uri)
    return found.export(top_k=2, out=tmp_path_factory.mktemp("api") / "export", register="small-api")


def test_export_predict_evaluate_load_and_register(searched, exported, tmp_path):
    model = exported
    assert isinstance(model, tunefleet.Ensemble) and model.onnx_path.is_file()
    assert isinstance(model.card, ExportCard) and len(model.card.members) == 2

    data, folder = _test_split(tmp_path / "images")
    scores = model.evaluate(folder)  # the card's test accuracy, from the same images
    assert scores["n"] == len(data.test.labels) and scores["acc"] == pytest.approx(model.card.ensemble.acc, abs=1e-9)
    from_files = model.predict(folder)
    from_arrays = model.predict(data.test.images)  # a uint8 batch [N, H, W]
    in_order = from_files.sort_values("file", key=lambda f: f.map(lambda p: p.rsplit("/", 1)[1]))
    assert list(from_arrays["class"]) == list(in_order["class"])
    assert list(from_arrays["file"][:2]) == ["<image 0>", "<image 1>"]
    assert np.allclose(from_arrays["probability"], in_order["probability"], atol=1e-6)

    for source in (model.source, "models:/small-api/1"):
        again = tunefleet.load(source, tracking_uri=searched.uri)
        assert list(again.predict(data.test.images[:20])["class"]) == list(from_arrays["class"][:20])
    registered = tunefleet.load("models:/small-api/1", tracking_uri=searched.uri)
    assert registered.card == model.card  # card.json, from the export run that registered it
    with pytest.raises(tunefleet.SpecError, match="is a registered model already"):
        registered.register("again")
    assert model.register("small-api").uri == "models:/small-api/2"


def test_a_fp16_export_keeps_float32_input_and_fp32s_answers(searched, tmp_path):
    """fp16 keeps the graph's float32 input and output (``keep_io_types``), so every caller feeds
    it as before; its probabilities stay within the stated tolerance of fp32's."""
    from tunefleet.analysis._precision import FP16_TOL

    found = tunefleet.open("small", tracking_uri=searched.uri)
    model = found.export(top_k=2, out=tmp_path / "fp16", precision="fp16")
    fp32, fp16 = model.card.variants
    assert model.card.precision == "fp16" and fp16.max_abs_diff_vs_fp32 <= FP16_TOL
    assert fp16.file_bytes < fp32.file_bytes and fp16.agreement_with_fp32 >= 0.99
    _, folder = _test_split(tmp_path / "images")
    assert model.evaluate(folder)["acc"] == pytest.approx(model.card.ensemble.acc, abs=1e-9)
    with pytest.raises(tunefleet.SpecError, match=r"^--precision: unknown precision 'bf16'; one of: fp32, fp16, int8"):
        found.export(top_k=2, out=tmp_path / "never", precision="bf16")
    assert not (tmp_path / "never").exists()


def test_arrays_are_read_one_way_or_refused(exported, tmp_path):
    """[H, W] and [H, W, C] are one image, [N, H, W] and [N, H, W, C] a batch (uint8 or integers
    0-255, floats 0-1); channels first, or values out of range, are one ``IMAGES`` line."""
    model, data = exported, load_data("digits", 16, 0)
    one, batch = data.test.images[0], data.test.images[:3]
    assert len(model.predict(one)) == 1 and len(model.predict(batch)) == 3
    rgb = np.repeat(one[..., None], 3, axis=-1)
    assert model.predict(rgb)["class"].tolist() == model.predict(one)["class"].tolist()  # the card says L
    assert model.predict(one.astype(np.int64))["class"].tolist() == model.predict(one / 255.0)["class"].tolist()
    assert len(model.predict([one, Image.fromarray(one), rgb])) == 3
    refused = {
        r"^IMAGES: arrays are channels-last, \[N, H, W, C\]; got shape \(2, 3, 16, 16\)": np.zeros((2, 3, 16, 16)),
        r"^IMAGES: images\[0\]: a float image holds values in \[0, 1\], got \[3.0, 3.0\]": np.full((1, 8, 8), 3.0),
        r"^IMAGES: images: an integer image holds values in \[0, 255\], got \[0, 300\]": np.array([[0, 300]]),
        r"^IMAGES: an array is one image": np.zeros(5, dtype=np.uint8),
    }
    for message, array in refused.items():
        with pytest.raises(tunefleet.SpecError, match=message):
            model.predict(array)
    (tmp_path / "zoo" / "zebra").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "zoo" / "zebra" / "z.png")
    with pytest.raises(tunefleet.SpecError, match=r"^folder: classes the model does not know: zebra"):
        model.evaluate(tmp_path / "zoo")
    (tmp_path / "zoo" / "zebra" / "broken.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): .*broken.png"):
        assert len(model.predict(tmp_path / "zoo")) == 1
