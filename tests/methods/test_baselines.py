from __future__ import annotations

import pytest

from frugalseg.methods import METHODS, get_method
from tests.helpers import loss_drops_on_fixed_batch, tiny_config


def test_registry_lists_known_methods_on_error():
    assert {"supervised", "pce", "mean_teacher"} <= set(METHODS)
    with pytest.raises(KeyError, match="supervised"):
        get_method("nope")


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("supervised", {}),
        ("pce", {"simulate": {"kind": "points", "seed": 0}}),
        ("mean_teacher", {"simulate": {"kind": "budget", "budget": "masks3", "seed": 0}}),
    ],
)
def test_a_few_steps_reduce_the_loss(method, data):
    before, after = loss_drops_on_fixed_batch(tiny_config(method, data=data))
    assert after < before, (before, after)
