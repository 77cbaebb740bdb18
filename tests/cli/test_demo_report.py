"""The demo report's headline: each model's Dice on the validation patient and what it means."""

from __future__ import annotations

from frugalseg.commands.demo import _headline


def test_headline_gives_each_models_dice_and_the_share_of_the_masks():
    summaries = {"pce": {"overall": {"dice": {"mean": 0.3}}}, "supervised": {"overall": {"dice": {"mean": 0.6}}}}
    lines = _headline(summaries)
    assert lines[0] == "- `pce`: mean Dice **0.300** on the sample's validation patient"
    assert lines[1] == "- `supervised`: mean Dice **0.600** on the sample's validation patient"
    assert lines[3].startswith("Clicks gave 50% of the full masks' Dice here")
