"""The MEP guide's RC4 examples (tests/data/mep_guide_rc4_examples.txt), as request/response pairs."""

from __future__ import annotations

from pathlib import Path

KEY = bytes([1]) * 16
"""The guide's default MAK, 01 x 16."""


def guide_messages() -> list[bytes]:
    text = (Path(__file__).parent / "data" / "mep_guide_rc4_examples.txt").read_text()
    return [bytes.fromhex(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def guide_pairs() -> list[tuple[bytes, bytes]]:
    messages = guide_messages()
    return list(zip(messages[0::2], messages[1::2]))
