"""Peak memory of an export scoring a member on the test split, as the image folder grows.

An export runs each member (and then the ensemble and its ONNX graph) over the test split of
the data its search trained on. Three arms, each in a fresh process, score one ``test_resnet``
member over a generated folder of ``--images`` JPEGs at 128 px (test split: 20 %):

- ``decoded``: how exports scored before issue 13's follow-up, written out here as the
  baseline: the whole folder decoded (``load_data``), then val and test as float tensors of
  [0, 1] images, run through the member in chunks;
- ``memory`` and ``stream``: ``EvalData`` (``tunefleet.analysis._members``), on the path the
  search's ``data.cache`` chose: decoded once and fed a batch at a time, or read from the files
  a batch at a time by loader workers.

Then ``stream`` again on a folder twice as large. A thread samples the RSS of the process and
its loader workers. Target: streaming stays flat (< 10 %) when the folder doubles.

    python benchmarks/export_scoring.py [--images 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import PeakRss, append, heading, in_fresh_process, parse_or_run_child, rss_change_line
from _images import write_jpeg_folder

SIZE, CLASSES = 128, 10


def _member() -> Any:
    import timm

    from tunefleet.analysis import Normalized

    model = timm.create_model("test_resnet", pretrained=False, num_classes=CLASSES, in_chans=3)
    return Normalized(model, [0.5] * 3, [0.25] * 3).eval()


def _decoded(spec: Any, member: Any) -> int:
    """The baseline: every split decoded, val and test held as float tensors, test scored."""
    import torch

    from tunefleet.analysis import batched
    from tunefleet.trainables import load_data

    data = load_data(spec)
    # The old EvalData held both splits this way for the whole export.
    held = [torch.from_numpy(s.images).float().div(255).permute(0, 3, 1, 2).contiguous() for s in (data.val, data.test)]
    return len(batched(member, held[1]))


def _fed(spec: Any, member: Any) -> int:
    from tunefleet.analysis._members import eval_data

    data = eval_data(spec)
    scored = len(data.over_test(lambda x: member(x).numpy()))
    data.feed.close()
    return scored


def child(arm: dict[str, Any]) -> None:
    import torch

    from tunefleet.spaces import DataSpec

    torch.set_num_threads(2)
    spec = DataSpec(
        kind="imagefolder", root=arm["root"], image_size=SIZE, cache="stream" if arm["arm"] == "stream" else "memory"
    )
    member = _member()
    peak = PeakRss()
    start = time.perf_counter()
    scored = (_decoded if arm["arm"] == "decoded" else _fed)(spec, member)
    print(json.dumps({**peak.stop(), "seconds": time.perf_counter() - start, "scored": scored}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    args = parse_or_run_child(parser, child)
    if args is None:
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="tf-export-") as tmp:
        for n in (args.images, 2 * args.images):
            root = write_jpeg_folder(Path(tmp) / f"images-{n}", n, size=SIZE, classes=CLASSES)
            for arm in ("decoded", "memory", "stream") if n == args.images else ("stream",):
                rows.append({"images": n, "arm": arm, **in_fresh_process(__file__, {"root": str(root), "arm": arm})})
                print(json.dumps(rows[-1]), flush=True)
    small, large = (r for r in rows if r["arm"] == "stream")
    lines = [
        heading(
            "peak memory of an export scoring one member on the test split",
            f"test_resnet at {SIZE} px, generated JPEG folders (test split 20 %), 2 torch threads; RSS of the "
            "process + its loader workers, sampled every 0.1 s",
        ),
        "| images | arm | test images scored | peak RSS, process MiB | peak RSS, with workers MiB | seconds |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['images']} | {r['arm']} | {r['scored']} | {r['peak_main_mib']:.0f} | {r['peak_total_mib']:.0f} | "
        f"{r['seconds']:.0f} |"
        for r in rows
    ]
    lines.append(rss_change_line(small, large, " (stream)"))
    append("\n".join(lines) + "\n", not args.no_write)


if __name__ == "__main__":
    main()
