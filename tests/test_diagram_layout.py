"""The committed SVG diagrams are legible (issue 21 item 3): every text box inside the picture and
clear of every other, no text under 10 px at the SVG's own size, at most 2,400 px wide, a legend,
and actions on the edges.

Text boxes are measured as the SVG asks them to be drawn: Helvetica (Arial has the same widths),
with the Adobe font metrics' advance widths of its ASCII characters (1/1000 em); any other
character counts as a full em. A box is the text's advance width by its font size, from 0.75 of
the size above the baseline to 0.2 below.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterlink.diagrams import LEGEND, MAX_WIDTH

DIAGRAMS = Path(__file__).parent.parent / "diagrams"
SVGS = sorted(DIAGRAMS.glob("*.svg"))
SVG = "{http://www.w3.org/2000/svg}"

HELVETICA = dict(zip(
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278] + [556] * 10
    + [278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
       778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500,
       556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500,
       500, 500, 334, 260, 334, 584], strict=True))
"""Helvetica's advance widths (Adobe Font Metrics, the 14 standard PDF fonts)."""


@dataclass(frozen=True, slots=True)
class Box:
    text: str
    left: float
    top: float
    right: float
    bottom: float
    pixels: float
    """The font size in pixels at the SVG's own size."""

    def overlaps(self, other: Box) -> bool:
        return self.left < other.right and other.left < self.right and self.top < other.bottom and other.top < self.bottom


@dataclass(frozen=True, slots=True)
class Drawing:
    width_px: float
    view: tuple[float, float, float, float]
    boxes: list[Box]


def _pixels(length: str) -> float:
    """An SVG length in px (graphviz writes pt)."""
    number = float(re.match(r"[\d.]+", length)[0])  # type: ignore[index]
    return number * 4 / 3 if length.endswith("pt") else number


def read(path: Path) -> Drawing:
    root = ET.parse(path).getroot()
    view = tuple(float(value) for value in root.get("viewBox", "").split())
    assert len(view) == 4, path
    width_px = _pixels(root.get("width", "0"))
    scale = width_px / view[2]
    boxes = []
    # graphviz puts everything in one group moved by translate(); no other transform
    transform = root.find(f"{SVG}g").get("transform", "")  # type: ignore[union-attr]
    moved = re.search(r"translate\(([-\d.]+) ([-\d.]+)\)", transform)
    dx, dy = (float(moved[1]), float(moved[2])) if moved else (0.0, 0.0)
    for element in root.iter(f"{SVG}text"):
        text = "".join(element.itertext())
        size = float(element.get("font-size", "14"))
        x, y = float(element.get("x", "0")) + dx, float(element.get("y", "0")) + dy
        advance = sum(HELVETICA.get(char, 1000) for char in text) * size / 1000
        anchor = element.get("text-anchor", "start")
        left = x - advance / 2 if anchor == "middle" else x - advance if anchor == "end" else x
        boxes.append(Box(text, left, y - 0.75 * size, left + advance, y + 0.2 * size, size * scale))
    return Drawing(width_px, view, boxes)  # type: ignore[arg-type]


def test_there_are_diagrams() -> None:
    assert len(SVGS) >= 11


@pytest.mark.parametrize("path", SVGS, ids=lambda path: path.name)
def test_svg_is_legible(path: Path) -> None:
    drawing = read(path)
    x, y, width, height = drawing.view
    assert drawing.width_px <= MAX_WIDTH, f"{drawing.width_px:.0f} px wide"
    for box in drawing.boxes:
        assert box.pixels >= 10, f"{box.text!r}: {box.pixels:.1f} px"
        assert x <= box.left and box.right <= x + width and y <= box.top and box.bottom <= y + height, \
            f"{box.text!r} is cut: {box} outside {drawing.view}"
    for one, other in itertools.combinations(drawing.boxes, 2):
        assert not one.overlaps(other), f"{one.text!r} overlaps {other.text!r}"


@pytest.mark.parametrize("path", SVGS, ids=lambda path: path.name)
def test_svg_has_a_legend(path: Path) -> None:
    texts = {box.text for box in read(path).boxes}
    assert "Legend" in texts
    assert all(sign in texts for sign, _ in LEGEND)


def test_actions_are_on_the_edges() -> None:
    """P1: which end_of_telegram branch publishes and which drops is on the edge itself."""
    texts = re.sub(r"\s+", " ", " ".join(box.text for box in read(DIAGRAMS / "P1Reader.svg").boxes))
    assert "end_of_telegram [crc_ok and parsed] / publish" in texts
    assert "end_of_telegram [crc_mismatch] / drop_crc_error" in texts


def test_the_checks_catch_overlap_and_cut_text(tmp_path: Path) -> None:
    bad = tmp_path / "bad.svg"
    bad.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="300pt" height="100pt" viewBox="0 0 300 100">'
                   '<g transform="translate(4 96)"><text x="10" y="-50" font-size="8">overlapping text</text>'
                   '<text x="20" y="-48" font-size="8">overlapping</text>'
                   '<text x="280" y="-10" font-size="8">cut at the right</text></g></svg>')
    with pytest.raises(AssertionError, match="is cut"):
        test_svg_is_legible(bad)
    boxes = read(bad).boxes
    assert boxes[0].overlaps(boxes[1]) and not boxes[0].overlaps(boxes[2])
