"""Names shared by the simulators: the version stamp, the kinds a request may name, box corruptions."""

from __future__ import annotations

SIMULATOR = "frugalseg.simulate/1"
"""Recorded in every simulated file's provenance; bumped whenever an algorithm changes its output."""

KINDS = ("points", "scribbles", "boxes", "tags", "budget")
"""What ``frugalseg simulate --kind`` accepts."""

CORRUPTIONS = ("shift", "class", "mixed")
"""What a corrupted box can suffer (:class:`BoxOptions` ``corruption``)."""

BUDGET_KINDS = ("masks", "scribbles", "points", "boxes", "tags", "unlabelled")
"""What a budget can give a patient, in the fixed order used to break ties and lay out blocks."""
