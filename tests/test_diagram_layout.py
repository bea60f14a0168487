"""The committed SVG diagrams are legible (issue 21 item 3): every text box inside the picture and
clear of every other, no text under 10 px at the SVG's own size, at most 2,400 px wide, a legend,
and actions on the edges.

Text is measured as the SVG asks it to be drawn, in Helvetica (`diagrams.read_svg`); the
measurement itself is checked on a small hand-written SVG.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterlink.diagrams import LEGEND, MAX_WIDTH, layout_problems, read_svg

DIAGRAMS = Path(__file__).parent.parent / "diagrams"
SVGS = sorted(DIAGRAMS.glob("*.svg"))


def test_there_are_diagrams() -> None:
    assert len(SVGS) >= 11


@pytest.mark.parametrize("path", SVGS, ids=lambda path: path.name)
def test_svg_is_legible(path: Path) -> None:
    text = path.read_text()
    assert layout_problems(text) == []
    assert read_svg(text).width_px <= MAX_WIDTH


@pytest.mark.parametrize("path", SVGS, ids=lambda path: path.name)
def test_svg_has_a_legend(path: Path) -> None:
    texts = {box.text for box in read_svg(path.read_text()).boxes}
    assert "Legend" in texts
    assert all(sign in texts for sign, _ in LEGEND)


def test_actions_are_on_the_edges() -> None:
    """P1: which end_of_telegram branch publishes and which drops is on the edge itself."""
    boxes = read_svg((DIAGRAMS / "P1Reader.svg").read_text()).boxes
    texts = re.sub(r"\s+", " ", " ".join(box.text for box in boxes))
    assert "end_of_telegram [crc_ok and parsed] / publish" in texts
    assert "end_of_telegram [crc_mismatch] / drop_crc_error" in texts


def test_the_measure_finds_overlap_cut_small_and_wide_text() -> None:
    bad = ('<svg xmlns="http://www.w3.org/2000/svg" width="1900pt" height="100pt" viewBox="0 0 1900 100">'
           '<g transform="translate(4 96)"><text x="10" y="-50" font-size="8">overlapping text</text>'
           '<text x="40" y="-48" font-size="8">overlapping</text>'
           '<text x="300" y="-50" font-size="8">clear of the others</text>'
           '<text x="1850" y="-10" font-size="8">cut at the right</text>'
           '<text x="500" y="-10" font-size="7">small</text></g></svg>')
    problems = layout_problems(bad)
    assert problems == ["2533 px wide", "'cut at the right' is cut at the border", "'small' is 9.3 px",
                        "'overlapping text' overlaps 'overlapping'"]
    boxes = read_svg(bad).boxes
    # "overlapping text" in 8 pt Helvetica: 7,059/1000 em of 8 units
    assert boxes[0].right - boxes[0].left == pytest.approx(56.472)
