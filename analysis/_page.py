"""The report's page: what ``_report`` collects (figures in order, tables, notes), drawn as PNG
bytes and one self-contained HTML page (every figure embedded, so the one file works anywhere)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


@dataclass
class Draft:
    """What the report collects before anything is written: figures in order, tables, notes."""

    figures: list[tuple[str, str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, caption: str, figure: Figure | None) -> None:
        if figure is not None:
            self.figures.append((name, caption, figure))


def page_html(title: str, summary: str, draft: Draft, images: list[bytes]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}",
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}",
        "img{max-width:100%}figure{margin:1.5em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>",
    ]
    parts += [f"<h2>{html.escape(heading)}</h2>{table}" for heading, table in draft.tables]
    for (_, caption, _), data in zip(draft.figures, images, strict=True):
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f"<figure><img src='{uri}' alt='{html.escape(caption)}'>")
        parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in draft.notes) or "<li>none: every figure was drawn</li>"
    parts.append(f"<h2>Notes</h2><ul>{notes}</ul></body></html>")
    return "\n".join(parts)


def render_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    figure.clear()  # free its artists now: a search may build many reports in one process
    return buffer.getvalue()
