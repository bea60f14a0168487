"""Fuzzing the configuration file (issue 22 item 2) with the annotated example as the seed: its
text mutated byte by byte, and its parsed document with any key's value swapped for any TOML value.
Pass: a `Config`, or a `ConfigError` whose every line names the file and the key (never another
exception, never a traceback); a changed value that is refused is named by its key or the section
holding it.
"""

from __future__ import annotations

import copy
import math
import tomllib
from datetime import date, datetime, time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from meterlink.service.config import Config, ConfigError, load_config, parse_config
from mutations import budget, edits, mutate

EXAMPLE = Path(__file__).parent.parent / "meterlink.example.toml"


def uncommented(text: str) -> str:
    """The example with each commented [[link]] block taken in (their names are distinct)."""
    lines = text.splitlines()
    out, inside = [], False
    for line in lines:
        if line == "# [[link]]":
            inside = True
        elif not line.startswith("# "):
            inside = False
        out.append(line[2:] if inside and line.startswith("# ") and not line.startswith("# #") else line)
    return "\n".join(out) + "\n"


SEED = uncommented(EXAMPLE.read_text(encoding="utf-8"))
DOCUMENT = tomllib.loads(SEED)
assert len(DOCUMENT["link"]) >= 6 and isinstance(parse_config(DOCUMENT), Config)


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a document, sections and values."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        return found + [p for key, value in node.items() for p in paths(value, prefix + (key,))]
    if isinstance(node, list):
        return found + [p for index, value in enumerate(node) for p in paths(value, prefix + (index,))]
    return found


PATHS = paths(DOCUMENT)
KEYS = sorted({part for path in PATHS for part in path if isinstance(part, str)}) + ["key", "x"]

scalars = (st.text(max_size=20) | st.integers() | st.integers(10**20, 10**30) | st.floats() | st.booleans()
           | st.sampled_from([math.nan, math.inf, -0.0, "", "tcp://", "tcp://h:99999", "/", "1:2:3", "3:1-1:1.8.0.255:2",
                              date(2026, 12, 4), time(12, 0), datetime(2026, 12, 4, 12, 0)]))
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3), max_leaves=6)


def section(path: tuple) -> str:
    """The key of the table holding a path: `link[2]` for a link's value, `mqtt` for the MQTT section's."""
    return f"link[{path[1]}]" if path[0] == "link" and len(path) > 1 else path[0]


@budget(300)
@given(st.sampled_from(PATHS), toml_values)
def test_any_value_anywhere_is_taken_or_refused_by_its_key(path, value):
    document = copy.deepcopy(DOCUMENT)
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    try:
        parse_config(document, "fuzz.toml")
    except ConfigError as error:
        lines = str(error).splitlines()
        assert lines and all(line.startswith("fuzz.toml: ") and line.count(": ") >= 2 for line in lines), lines
        assert any(line.removeprefix("fuzz.toml: ").startswith(section(path)) for line in lines), (path, lines)


@budget(300)
@given(edits)
def test_a_mutated_file_loads_or_says_what_is_wrong(tmp_path_factory, changes):
    config = tmp_path_factory.mktemp("config") / "meterlink.toml"
    config.write_bytes(mutate(SEED.encode("utf-8"), changes))
    config.chmod(0o600)
    try:
        load_config(config)
    except ConfigError as error:
        lines = str(error).splitlines()
        assert lines and all(line.startswith(f"{config}: ") for line in lines)
