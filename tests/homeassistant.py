"""Home Assistant's side of MQTT discovery, for the tests.

Home Assistant cannot be installed here (it needs Python >= 3.13.2), so what it does with meterlink's
messages is reproduced from its published rules: templates are rendered with Jinja2 as its MQTT
integration renders them, and sensor configs are checked against the device-class tables of its
releases 2025.7 to 2025.11 (tests/data/ha_sensor_tables.json, written by tests/data/ha_sensor_tables.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

RELEASES: dict[str, dict[str, dict[str, list[str | None]]]] = json.loads(
    (Path(__file__).parent / "data" / "ha_sensor_tables.json").read_text(encoding="utf-8"))["releases"]

# Home Assistant's template environment is a sandboxed one; strict, so a template that names a key the
# payload lacks fails the test instead of rendering empty.
_JINJA = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def render(template: str, payload: bytes) -> str:
    """As the MQTT integration renders a value or availability template: `value` is the payload as
    text, `value_json` the payload parsed when it is JSON; the result is stripped."""
    text = payload.decode()
    variables: dict[str, Any] = {"value": text}
    try:
        variables["value_json"] = json.loads(text)
    except ValueError:
        pass
    return _JINJA.from_string(template).render(variables).strip()


def available(config: dict[str, Any], payloads: dict[str, bytes]) -> bool:
    """Whether Home Assistant shows the entity available, given the last payload on each of its
    availability topics (a topic without one counts as unavailable, as in Home Assistant)."""
    assert config["availability_mode"] == "all"
    return all(_says_available(entry, payloads.get(entry["topic"])) for entry in config["availability"])


def _says_available(entry: dict[str, str], payload: bytes | None) -> bool:
    if payload is None:
        return False
    said = render(entry["value_template"], payload) if "value_template" in entry else payload.decode()
    assert said in (entry.get("payload_available", "online"), entry.get("payload_not_available", "offline")), said
    return said == entry.get("payload_available", "online")


def violations(config: dict[str, Any]) -> list[str]:
    """What each release rejects (a unit its device class does not allow: the MQTT sensor schema refuses
    the config) or warns about (a state class the device class does not allow) in a sensor config."""
    device_class = config.get("device_class")
    if device_class is None:
        return []
    unit, state_class = config.get("unit_of_measurement"), config.get("state_class")
    found = []
    for release, tables in RELEASES.items():
        units = tables["device_class_units"].get(device_class)
        if units is None:
            found.append(f"{release}: no device class {device_class!r}")
        elif unit not in units:
            found.append(f"{release}: {device_class} does not take unit {unit!r}")
        if state_class is not None and state_class not in tables["device_class_state_classes"].get(device_class, []):
            found.append(f"{release}: {device_class} does not take state class {state_class!r}")
    return found
