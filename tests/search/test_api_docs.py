"""The Python API's documentation: the examples in docs/API.md type-check against the API (mypy,
the project's settings), and the reference ``make docs`` builds from the docstrings (pdoc) has no
broken reference: every link lands on a page and anchor it built, and every ``Name.attr`` a public
docstring names exists."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tunefleet

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "API.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_s_examples_type_check(tmp_path):
    examples = _examples()
    assert len(examples) >= 3
    files = []
    for i, code in enumerate(examples):
        files.append(tmp_path / f"example_{i}.py")
        files[-1].write_text(code)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache"), *map(str, files)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _documented() -> dict[str, str]:
    """Docstrings of ``tunefleet`` and of each public name and its public members."""
    docs = {"tunefleet": tunefleet.__doc__ or ""}
    for name in tunefleet.__all__:
        value = getattr(tunefleet, name)
        docs[name] = inspect.getdoc(value) or ""
        for member, attr in vars(value).items() if inspect.isclass(value) else ():
            if not member.startswith("_"):
                docs[f"{name}.{member}"] = inspect.getdoc(attr) or ""
    return docs


def _resolves(dotted: str) -> bool:
    value: object = tunefleet
    for part in dotted.removeprefix("tunefleet.").split("."):
        if not hasattr(value, part) and part not in getattr(value, "__annotations__", {}):
            return False
        value = getattr(value, part, None)
    return True


def test_every_api_name_a_docstring_names_exists():
    public = set(tunefleet.__all__) | {"tunefleet"}
    named = [
        (where, ref)
        for where, doc in _documented().items()
        for ref in re.findall(r"``([A-Za-z_][\w.]*)(?:\(\))?``", doc)
        if ref.split(".")[0] in public and ref != "tunefleet"
    ]
    assert len(named) >= 5  # the docstrings do name the API
    assert not [f"{where}: {ref}" for where, ref in named if not _resolves(ref)]


@pytest.mark.slow
def test_the_reference_builds_and_every_link_lands(tmp_path):
    import pdoc

    pdoc.pdoc("tunefleet", output_directory=tmp_path)
    pages = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.html")}
    page = pages["tunefleet.html"]
    assert all(f'id="{name}"' in page for name in tunefleet.__all__)  # every public name documented
    broken = [
        f"{name} -> {file}#{anchor}"
        for name, text in pages.items()
        for file, anchor in re.findall(r'href="([^"#:]*)(?:#([^"]*))?"', text)
        if not _lands(pages, file or name, anchor)
    ]
    assert not broken


def _lands(pages: dict[str, str], file: str, anchor: str) -> bool:
    """A link to a page pdoc built (and to an anchor on it), or to its own script and styles."""
    if file.endswith((".js", ".css")):
        return True
    return file in pages and (not anchor or f'id="{anchor}"' in pages[file])
