"""The base every settings section shares, and the error that names the one field to change.

A module of its own so that the sections (``_sections``, ``_search_settings``) and the objectives'
checks can raise ``_field_error`` without importing one another.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

FIELD_ERROR = "tunefleet_field"
Mode = Literal["max", "min"]


def _field_error(field: str, message: str) -> PydanticCustomError:
    """A validation error about ``field`` of the section being checked (``_spec`` reads ``ctx``)."""
    return PydanticCustomError(FIELD_ERROR, "{field}: {message}", {"field": field, "message": message})


class Section(BaseModel):
    """Base of every settings section: frozen (hashable, so a cache key), unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True)
