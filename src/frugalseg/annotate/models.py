"""The one request body the annotation file has no model for: an item's tags as a whole.

Points, scribbles and boxes travel as the file's own models (``frugalseg.data.annotations``);
tags are a field of :class:`~frugalseg.data.annotations.Item`, so setting them needs this wrapper,
with the same strictness (unknown fields refused) and the same meaning (``[]``: nothing in this
slice; ``null``: not known).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["TagsBody"]


class TagsBody(BaseModel):
    """``{"tags": [1, 3]}``: the foreground classes present in the slice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[int] | None
