"""The BSM-WS36A test data of tests/data (see its README): the manual's examples and bsm-python's
real signed snapshots and OCMF strings, read into the forms the tests use."""

from __future__ import annotations

import json
from pathlib import Path

from meterlink.protocols.sunspec import ModelInstance

DATA = Path(__file__).parent / "data"

MANUAL = json.loads((DATA / "bsm_ws36a_manual.json").read_text())
SIGNED = json.loads((DATA / "bsm_python_signed.json").read_text())
PUBLIC_KEY = bytes.fromhex(SIGNED["public_key"])
SCS_INSTANCE = ModelInstance(40522, 64901, 252)
"""Where the dump's snapshot lies: protocol address 40521 is data-model address 40522."""


def scs_registers() -> list[int]:
    """The 254 registers of `bsmtool dump 40521 254` (a real meter's Signed Current Snapshot)."""
    registers: list[int] = []
    for line in (DATA / "bsm_python_scs_dump.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        words = line.split(":", 1)[1].split("  ")[0].split()
        registers.extend(int(word, 16) for word in words)
    return registers


def scs_frames() -> list[tuple[str, bytes]]:
    """(direction, frame) of `bsmtool get scs` on the wire: '-->' requests, '<--' responses."""
    frames = []
    for line in (DATA / "bsm_python_scs_frames.txt").read_text().splitlines():
        if line.startswith(("-->", "<--")):
            frames.append((line[:3], bytes.fromhex(line[4:].replace(" ", ""))))
    return frames
