"""Which harder-family members the inner loop (``pytest -m "not slow"``) runs."""

import pytest

#: The three largest members run only in the full suite; the three small ones cover every
#: kind of difficulty (low-frequency bands, textureless quiet frames, wireless corruption).
LARGE = {"highfreq_608", "lowfreq_548x484", "tilted_400x360"}


def inner_loop_small(names: list[str]) -> list[object]:
    """``names`` as parametrize values, the large members marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in names]
