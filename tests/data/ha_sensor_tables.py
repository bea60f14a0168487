"""Write ha_sensor_tables.json: Home Assistant's sensor device-class tables, release by release.

    pip download --no-deps --only-binary=:all: --python-version 3.13.2 homeassistant==2025.7.0 -d WHEELS
    (and so on for each release), then: python tests/data/ha_sensor_tables.py WHEELS/*.whl

Home Assistant itself needs Python >= 3.13.2, so its modules are not imported: the two tables
(`DEVICE_CLASS_UNITS` and `DEVICE_CLASS_STATE_CLASSES` of homeassistant/components/sensor/const.py)
and the unit enums and constants they are built from (homeassistant/const.py) are read from the
source in the released wheel and evaluated statement by statement; statements that need anything
else are left out, as the tables do not use them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import zipfile
from enum import EnumType, StrEnum
from pathlib import Path
from typing import Any, Final

SENSOR_CONST = "homeassistant/components/sensor/const.py"
CONST = "homeassistant/const.py"
TABLES = ("DEVICE_CLASS_UNITS", "DEVICE_CLASS_STATE_CLASSES")


class _DeprecatedMembers(EnumType):
    """Stands in for Home Assistant's EnumWithDeprecatedMembers: its deprecated names repeat values
    the enum already has, so the set of unit strings is the same without them."""

    def __new__(mcs, name: str, bases: tuple[type, ...], body: Any, deprecated: Any = None, **kwargs: Any) -> Any:
        return super().__new__(mcs, name, bases, body, **kwargs)


def _evaluate(source: str, namespace: dict[str, Any], wanted: set[str] | None) -> None:
    """Run the module-level classes and assignments of `source` that stand on their own."""
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.ClassDef, ast.Assign, ast.AnnAssign)):
            continue
        targets = [node.name] if isinstance(node, ast.ClassDef) else [
            t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
        if wanted is not None and not set(targets) & wanted:
            continue
        try:
            exec(compile(ast.Module([node], []), "<ha>", "exec"), namespace)
        except Exception:  # a statement that needs more of Home Assistant than the tables do
            continue


def tables(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        const, sensor_const = (archive.read(name).decode() for name in (CONST, SENSOR_CONST))
    namespace: dict[str, Any] = {"StrEnum": StrEnum, "Final": Final, "EnumWithDeprecatedMembers": _DeprecatedMembers}
    _evaluate(const, namespace, None)
    _evaluate(sensor_const, namespace, {"SensorDeviceClass", "SensorStateClass", *TABLES})

    def plain(values: set[Any]) -> list[str | None]:
        return sorted((None if v is None else str(v) for v in values), key=lambda v: (v is not None, v or ""))

    return {
        "device_class_units": {str(k): plain(v) for k, v in sorted(namespace["DEVICE_CLASS_UNITS"].items())},
        "device_class_state_classes": {str(k): plain(v)
                                       for k, v in sorted(namespace["DEVICE_CLASS_STATE_CLASSES"].items())},
    }


def main(wheels: list[Path]) -> None:
    releases = {}
    for wheel in sorted(wheels, key=lambda path: [int(p) for p in path.name.split("-")[1].split(".")]):
        release = wheel.name.split("-")[1]
        releases[release] = {"wheel": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                             **tables(wheel)}
    document = {
        "source": {
            "repository": "home-assistant/core",
            "paths": [SENSOR_CONST, CONST],
            "tables": list(TABLES),
            "taken_from": "the release wheels on PyPI (built from the release tags of the same name); "
                          "the wheels carry no commit id, so their sha256 is recorded",
            "licence": "Apache-2.0",
            "written_by": "tests/data/ha_sensor_tables.py",
        },
        "releases": releases,
    }
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]])
