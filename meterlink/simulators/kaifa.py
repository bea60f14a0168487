"""A simulated Kaifa MA309M (Austrian M-Bus customer interface, seed 001 ch. B.4).

Telegrams are what these meters send (see tests/data/kaifa_mbus_*.json): a data-notification
with the clock, meter number, logical device name and 13 registers with scaler and unit, wrapped
in general-glo-ciphering (SC 0x21: encrypted, no tag; with an authentication key SC 0x31 and a
12-byte tag) and split over two M-Bus long frames `68 FA FA 68 53 FF 00 01 67 ...` and `... 11 01 67`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from ..actors.link import LinkHooks, LinkLost, LinkStatus, run_link
from ..machines.mbus import MBusMeter
from ..protocols.mbus import MBusFramer
from .clock import local_zone
from .household import Household
from .serve import push_every
from ..protocols.dlms.axdr import Data, DataTag, encode_data, octet_string, structure
from ..protocols.dlms.cosem import CosemDateTime
from ..protocols.dlms.security import encrypt
from ..protocols.mbus import ADDRESS_BROADCAST_NO_REPLY, CField, split_segments
from ..protocols.obis import Obis

VIENNA = local_zone("Europe/Vienna")

METER_NUMBER = "1KFM0200999999"
DEVICE_NAME = "KFM1200200999999"
SYSTEM_TITLE = b"KFM\x10\x20\x99\x99\x99"
DEMO_KEY = bytes.fromhex("36C66639E48A8CA4D6BC8B282A793BBB")
"""The simulator's default key (a test key, not any real meter's)."""


def _register(obis: str, tag: DataTag, raw: int, scaler: int, unit: int) -> Data:
    return structure(
        octet_string(Obis.parse(obis).to_bytes()),
        Data(tag, raw),
        structure(Data(DataTag.INTEGER, scaler), Data(DataTag.ENUM, unit)),
    )


def _text(obis: str, text: str) -> Data:
    return structure(octet_string(Obis.parse(obis).to_bytes()), octet_string(text.encode("ascii")))


@dataclass
class KaifaMeterModel:
    key: bytes = DEMO_KEY
    auth_key: bytes | None = None
    seed: int = 1
    frame_counter: int = 0x2000
    household: Household = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(self.seed)

    def plaintext(self, now: datetime) -> bytes:
        """The data-notification APDU for the meter's state at `now` (local time)."""
        sample = self.household.sample(now)
        power, volts, amps = sample.power_w, sample.decivolts, sample.centiamps
        clock = CosemDateTime.from_datetime(now.replace(microsecond=0), deviation=-60, status=0x00).to_bytes()
        body = structure(
            octet_string(Obis.parse("0-0:1.0.0.255").to_bytes()),
            octet_string(clock),
            _text("0-0:96.1.0.255", METER_NUMBER),
            _text("0-0:42.0.0.255", DEVICE_NAME),
            _register("1-0:32.7.0.255", DataTag.LONG_UNSIGNED, volts[0], -1, 35),
            _register("1-0:52.7.0.255", DataTag.LONG_UNSIGNED, volts[1], -1, 35),
            _register("1-0:72.7.0.255", DataTag.LONG_UNSIGNED, volts[2], -1, 35),
            _register("1-0:31.7.0.255", DataTag.LONG_UNSIGNED, amps[0], -2, 33),
            _register("1-0:51.7.0.255", DataTag.LONG_UNSIGNED, amps[1], -2, 33),
            _register("1-0:71.7.0.255", DataTag.LONG_UNSIGNED, amps[2], -2, 33),
            _register("1-0:1.7.0.255", DataTag.DOUBLE_LONG_UNSIGNED, max(int(power), 0), 0, 27),
            _register("1-0:2.7.0.255", DataTag.DOUBLE_LONG_UNSIGNED, max(int(-power), 0), 0, 27),
            _register("1-0:1.8.0.255", DataTag.DOUBLE_LONG_UNSIGNED, int(sample.import_wh), 0, 30),
            _register("1-0:2.8.0.255", DataTag.DOUBLE_LONG_UNSIGNED, int(sample.export_wh), 0, 30),
            _register("1-0:3.8.0.255", DataTag.DOUBLE_LONG_UNSIGNED, int(sample.reactive_import_varh), 0, 32),
            _register("1-0:4.8.0.255", DataTag.DOUBLE_LONG_UNSIGNED, int(sample.reactive_export_varh), 0, 32),
        )
        invoke_id = self.frame_counter.to_bytes(4, "big")
        return b"\x0f" + invoke_id + b"\x0c" + clock + encode_data(body)

    def frames(self, now: datetime) -> list[bytes]:
        """One telegram: encrypted and split over M-Bus long frames as Kaifa meters do."""
        self.frame_counter += 1
        security_control = 0x31 if self.auth_key is not None else 0x21
        apdu = encrypt(self.plaintext(now), SYSTEM_TITLE, self.frame_counter, self.key, security_control, self.auth_key)
        return split_segments(apdu, CField.SND_UD, ADDRESS_BROADCAST_NO_REPLY)


def vienna_now() -> datetime:
    """The meter's clock: Austrian local time, as these meters keep it."""
    return datetime.now(VIENNA).replace(tzinfo=None)


async def run_kaifa_meter(
    stream: trio.abc.Stream,
    model: KaifaMeterModel,
    interval: float = 5.0,
    wallclock: Callable[[], datetime] = vienna_now,
) -> None:
    """The meter on one link, with the handshake: search, then data while acks come (MBusMeter)."""
    machine = MBusMeter(lambda: model.frames(wallclock()), push_interval=interval)
    status = LinkStatus("kaifa", "meter")

    async def already_open() -> trio.abc.Stream:
        return stream

    try:
        await run_link(already_open, MBusFramer(), machine, LinkHooks(lambda reading: None), status)
    except (LinkLost, trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the adapter hung up: this meter's line is done


async def push_one_way(
    stream: trio.abc.SendStream,
    model: KaifaMeterModel,
    interval: float = 5.0,
    wallclock: Callable[[], datetime] = vienna_now,
) -> None:
    """A meter run one-way (as TINETZ does): a telegram every interval, no search, no acks awaited."""
    await push_every(stream, lambda: b"".join(model.frames(wallclock())), interval)
