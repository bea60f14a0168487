"""The reading format's arithmetic: value = raw x 10^scaler, as the nearest float to that decimal."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.readings import scaled


@given(st.integers(-(10**18), 10**18), st.integers(-30, 6))
def test_scaled_is_the_nearest_float_to_the_decimal(raw, scaler):
    expected = raw * 10**scaler if scaler >= 0 else float(f"{raw}e{scaler}")
    assert scaled(raw, scaler) == expected


def test_examples_from_the_seeds():
    assert scaled(2308, -1) == 230.8
    assert scaled(1955, -3) == 1.955
    assert scaled(9108, 0) == 9108 and isinstance(scaled(9108, 0), int)
