"""``tunefleet spaces``: the built-in search spaces and the knob catalog, printed readably.

Nothing here imports torch or Ray: it reads ``tunefleet.spaces`` only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from tunefleet.spaces import (
    BUILTIN_SPACES,
    DESCRIPTIONS,
    FAMILIES,
    FAMILY_DEFAULTS,
    GROUPS,
    TOP_KNOBS,
    SpecError,
    builtin_space,
    load_spec,
    space_rows,
    space_to_yaml,
    spec_json_schema,
    suggest,
)

from ._console import out

SPACES_HELP = "Built-in search spaces and the catalog of searchable knobs."
# Off a terminal, these tables fold their text at this width.
WIDTH = 140


def list_spaces() -> None:
    """The built-in spaces, with how many knobs each searches."""
    table = Table(title="built-in spaces (use as `space: {base: NAME, ...}`)")
    for col in ("name", "knobs", "what it searches"):
        table.add_column(col)
    for name in BUILTIN_SPACES:
        table.add_row(name, str(len(space_rows(builtin_space(name)))), DESCRIPTIONS[name])
    out(WIDTH).print(table)


def show(
    name: Annotated[str, typer.Argument(help="a built-in space, or a spec YAML file")],
    as_yaml: Annotated[bool, typer.Option("--yaml", help="print the YAML form (to paste into a spec)")] = False,
) -> None:
    """Print one space: every searched knob, its domain and what it means."""
    if name in BUILTIN_SPACES:
        space, title = builtin_space(name), f"{name}: {DESCRIPTIONS[name]}"
    elif name.endswith((".yaml", ".yml")) or Path(name).is_file():
        spec = load_spec(name)
        space, title = spec.space, f"{name}: the space of search {spec.name!r}"
    else:
        raise SpecError("spaces show", f"unknown space {name!r}" + suggest(name, tuple(BUILTIN_SPACES)))
    console = out(WIDTH)
    if as_yaml:
        console.print(yaml.safe_dump({"space": space_to_yaml(space)}, sort_keys=False), markup=False, end="")
        return
    table = Table(title=title, title_justify="left")
    for col in ("knob", "domain", "meaning"):
        table.add_column(col, overflow="fold")
    for path, domain, meaning in space_rows(space):
        table.add_row(path, domain, meaning)
    console.print(table)
    console.print("Knobs not listed keep their defaults (see `tunefleet spaces knobs`).")


def knobs() -> None:
    """Every knob a space may search: legal values and default."""
    table = Table(title="searchable knobs", title_justify="left")
    for col in ("knob", "values", "meaning"):
        table.add_column(col, overflow="fold")
    for key, knob in TOP_KNOBS.items():
        table.add_row(key, knob.describe(), knob.help)
    for family, options in FAMILIES.items():
        table.add_row(family, f"one of {', '.join(options)}, default {FAMILY_DEFAULTS[family]!r}", "")
        for option, option_knobs in options.items():
            for knob_name, knob in option_knobs.items():
                table.add_row(f"  {family}.{option}.{knob_name}", knob.describe(), knob.help)
    for group, group_knobs in GROUPS.items():
        for knob_name, knob in group_knobs.items():
            table.add_row(f"{group}.{knob_name}", knob.describe(), knob.help)
    out(WIDTH).print(table)


def schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")] = None,
) -> None:
    """The JSON Schema of a spec file, for editors (see the README's yaml-language-server line)."""
    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.write_text(text)
    out(WIDTH).print(f"wrote {out_file}")
