"""`meterlink detect` and `kind = "auto"`: find a meter's serial setting, framing and maker.

The usual settings are tried in turn: the port is opened with one, the probes and the `Detector`
of machines/detect.py listen through the link actor's loop (which sends the M-Bus
acknowledgements), and the first setting at which a meter is recognised is the one. A receiver
set to 8N1 reads an 8E1 meter without error (the parity bit passes for a second stop bit), so
2400 8E1 is tried before 2400 8N1, or an M-Bus meter would be reported at the wrong parity.

Over TCP a serial-to-Ethernet converter owns the line settings and one connection is all there
is: the framing and the meter are found the same way, the serial settings are not (reported as
null, and left to the converter in the `[[link]]` block).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ..actors.link import LinkHooks, LinkLost, LinkStatus, run_link
from ..machines.detect import SEARCH_LISTEN_TIME, Detection, Detector, Probes, may_miss_search_mode
from ..protocols.detect import maker_of
from ..protocols.dlms.security import CipherKeys
from ..transports import SerialSettings, open_link

USUAL_SETTINGS = (
    SerialSettings(115200, 8, "N", 1),  # P1 (DSMR 4/5, e-MUCs, encrypted P1); HDLC on KNG's P1 port
    SerialSettings(9600, 8, "N", 1),  # optical interfaces (Wiener Netze)
    SerialSettings(9600, 7, "E", 1),  # DSMR 2.2/3
    SerialSettings(2400, 8, "E", 1),  # M-Bus; HDLC on M-Bus ports and most HAN ports
    SerialSettings(2400, 8, "N", 1),  # Kamstrup HAN
    SerialSettings(38400, 8, "N", 1),  # Iskra AM550 at Elektro Ljubljana
)

Opener = Callable[[SerialSettings | None], Awaitable[trio.abc.Stream]]
"""Opens the port with a serial setting (None over TCP, where there is none to set)."""


@dataclass(frozen=True)
class Found:
    port: str
    serial: SerialSettings | None
    """None over TCP."""
    detection: Detection
    listen_time: float


@dataclass(frozen=True)
class NotFound:
    port: str
    tried: tuple[SerialSettings | None, ...]
    listen_time: float


Result = Found | NotFound


def settings_for(port: str) -> tuple[SerialSettings | None, ...]:
    return (None,) if port.startswith("tcp://") else USUAL_SETTINGS


def setting_text(serial: SerialSettings | None) -> str:
    if serial is None:
        return "the converter's setting"
    stopbits = int(serial.stopbits) if float(serial.stopbits).is_integer() else serial.stopbits
    return f"{serial.baudrate} {serial.bytesize}{serial.parity}{stopbits}"


async def detect(
    port: str,
    keys: Sequence[CipherKeys],
    listen_time: float,
    status: LinkStatus,
    on_setting: Callable[[SerialSettings | None], None] = lambda serial: None,
    opener: Opener | None = None,
    wallclock: Callable[[], float] = time.time,
) -> Result:
    """Try each setting of `port` until a meter is found; `status` shows the detector's state.
    A port that cannot be opened raises TransportError."""
    open_port = opener or partial(_open, port)
    tried = settings_for(port)

    async def open_and_tell(serial: SerialSettings | None) -> trio.abc.Stream:
        stream = await open_port(serial)
        on_setting(serial)  # once open: a port that cannot be opened is one line, its error
        return stream

    for serial in tried:
        detector = Detector(listen_time, counters=status.counters)
        with suppress(LinkLost):  # a converter that hangs up ends its one setting early
            await run_link(partial(open_and_tell, serial), Probes(keys), detector, LinkHooks(_no_reading), status,
                           wallclock)
        if detector.detection is not None:
            return Found(port, serial, detector.detection, listen_time)
    return NotFound(port, tried, listen_time)


async def _open(port: str, serial: SerialSettings | None) -> trio.abc.Stream:
    return await open_link(port, serial or SerialSettings())


def _no_reading(reading: object) -> None:
    """The detector publishes nothing."""


# -- what is reported -------------------------------------------------------------------------


def link_fields(found: Found, name: str) -> dict[str, Any]:
    """The `[[link]]` keys that read the meter found, as the config file spells them."""
    detection = found.detection
    fields: dict[str, Any] = {"name": name, "kind": detection.framing.kind, "port": found.port}
    if found.serial is not None:
        serial = found.serial
        fields |= {"baud": serial.baudrate, "parity": serial.parity, "bytesize": serial.bytesize,
                   "stopbits": int(serial.stopbits)}
    if detection.push_interval is not None:
        fields["push_interval"] = detection.push_interval
    if detection.framing.legacy:
        fields["legacy"] = True
    return fields


def link_block(found: Found, name: str) -> str:
    """A `[[link]]` block for the config file (keys never go there: meter_setkey)."""
    lines = ["[[link]]", *(f"{key} = {_toml(value)}" for key, value in link_fields(found, name).items())]
    if found.detection.encrypted:
        lines.append(f'# encrypted: set the meter\'s key with meter_setkey and "link": "{name}" '
                     '(README, "Setting the meter key")')
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # a JSON string or number is a TOML one


def report(result: Result) -> dict[str, Any]:
    """The JSON object `meterlink detect` prints."""
    if isinstance(result, NotFound):
        return {"kind": None, "framing": None, "serial": None, "push_interval": None, "system_title": None,
                "maker": None, "encrypted": None, "key_ok": None, "config": None, "notes": notes(result)}
    detection = result.detection
    title = detection.system_title
    return {
        "kind": detection.framing.kind,
        "framing": detection.framing.value,
        "serial": _serial_json(result.serial),
        "push_interval": detection.push_interval,
        "system_title": title.hex().upper() if title is not None else None,
        "maker": maker_of(title) if title is not None else None,
        "encrypted": detection.encrypted,
        "key_ok": detection.key_ok,
        "config": link_block(result, detection.framing.kind),
        "notes": notes(result),
    }


def _serial_json(serial: SerialSettings | None) -> dict[str, Any] | None:
    if serial is None:
        return None
    return {"baud": serial.baudrate, "parity": serial.parity, "bytesize": serial.bytesize,
            "stopbits": int(serial.stopbits)}


def summary(result: Result) -> str:
    """One line for a person: what was found where."""
    if isinstance(result, NotFound):
        tried = ", ".join(setting_text(serial) for serial in result.tried)
        return f"no meter recognised at {tried} ({_seconds(result.listen_time)} s at each)"
    detection = result.detection
    parts = [f"found at {setting_text(result.serial)}: {detection.framing.label}"]
    if detection.system_title is not None:
        parts.append(f"{maker_of(detection.system_title) or 'maker unknown'} "
                     f"(system title {detection.system_title.hex().upper()})")
    if detection.push_interval is not None:
        parts.append(f"a telegram every {_seconds(detection.push_interval)} s")
    parts.append({None: "no telegram yet", True: "encrypted", False: "in clear"}[detection.encrypted])
    parts.append({None: "", True: "the key opens the telegrams", False: "the key does not open them"}[detection.key_ok])
    return ", ".join(part for part in parts if part)


def notes(result: Result) -> list[str]:
    """What a person may need to do next."""
    if isinstance(result, NotFound):
        if not may_miss_search_mode(result.listen_time):
            return []
        return [f"an M-Bus meter in search mode sends its search telegram (SND_NKE) once a minute: listen "
                f"{_seconds(SEARCH_LISTEN_TIME)} s at each setting (--listen-time {_seconds(SEARCH_LISTEN_TIME)}, "
                f"or listen_time = {_seconds(SEARCH_LISTEN_TIME)} for kind = \"auto\")"]
    detection = result.detection
    found = []
    if result.serial is None:
        found.append("over TCP the converter sets the serial line: its settings were not detected")
    if detection.search_heard and not detection.arrivals:
        found.append(f"the meter's search telegram was acknowledged but no data telegram followed within "
                     f"{_seconds(result.listen_time)} s: check that the adapter's transmit line reaches the meter")
    if detection.encrypted and detection.key_ok is None and not detection.decrypted:
        found.append("the telegrams are encrypted: the grid operator's key (--key, and --auth-key where it "
                     "gives two) checks it")
    if detection.key_failure is not None:
        found.append(f"{detection.key_failure.value}: {detection.key_failure.advice}")
    return found


def _seconds(seconds: float) -> str:
    return f"{seconds:g}"
