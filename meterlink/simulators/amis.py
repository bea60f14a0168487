"""A simulated Netz OÖ AMIS meter (Siemens TD-3511) on its optical customer interface.

Netz OÖ's specification of 2021-11-05 (tests/data/amis_mbus_netzooe_spec.json): the meter is the
M-Bus master at 9600 8E1, sends SND_NKE to 240 once a minute until acknowledged, then an SND_UD
every second (FCB toggling), CI 0x5B with the adapter's secondary address 00000000 SAM 01 0E and
OMS mode 5; the records are those of the specification's table 2, in its order and codings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from ..actors.link import LinkHooks, LinkLost, LinkStatus, run_link
from ..machines.mbus import MBusMeter
from ..protocols.mbus import ADDRESS_SEARCH_TELEGRAM, FCB, CField, MBusFramer, encode_long
from ..protocols.mbus_app import CI_SND_UD_LONG, MODE_AES_CBC_IV, DeviceAddress, configuration_word, encrypt_payload
from .household import Household
from .kaifa import vienna_now

AMIS_ADDRESS = DeviceAddress(0x4C2D, bytes(4), 0x01, 0x0E)
"""The secondary address every AMIS meter sends (the specification's table 1: 4C 2D SAM, 00000000, 01, 0E)."""
AMIS_DEMO_KEY = bytes.fromhex("6E3A0C9B21F04D7E8A5513C2B7D9E046")
"""The simulator's default key (made up, not any real meter's)."""


def _date_time(now: datetime) -> bytes:
    """Type I (EN 13757-3 annex A): second, minute, hour, day with year bits, month with year bits, week."""
    year = now.year - 2000
    return bytes((now.second, now.minute, now.hour, now.day | (year & 0x07) << 5, now.month | (year & 0x78) << 1, 0))


@dataclass
class AmisMeterModel:
    key: bytes = AMIS_DEMO_KEY
    seed: int = 3
    access_number: int = 0
    fcb: bool = True
    """Toggled before each SND_UD: the first goes out with FCB clear (C = 0x53, as the specification's example)."""
    household: Household = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(self.seed)

    def records(self, now: datetime) -> bytes:
        """Table 2 of the specification: date-time, A+, A-, R+, R-, P+, P-, Q+, Q-, the collection totaliser."""
        sample = self.household.sample(now)
        power = int(sample.power_w)

        def u32(value: float) -> bytes:
            return int(value).to_bytes(4, "little")

        return (bytes.fromhex("066D") + _date_time(now)
                + bytes.fromhex("0403") + u32(sample.import_wh)
                + bytes.fromhex("04833C") + u32(sample.export_wh)
                + bytes.fromhex("8410FB8273") + u32(sample.reactive_import_varh)
                + bytes.fromhex("8410FB82F33C") + u32(sample.reactive_export_varh)
                + bytes.fromhex("042B") + u32(max(power, 0))
                + bytes.fromhex("04AB3C") + u32(max(-power, 0))
                + bytes.fromhex("04FB14") + u32(40)
                + bytes.fromhex("04FB943C") + u32(0)
                + bytes.fromhex("0483FF04") + (20).to_bytes(4, "little", signed=True))

    def frame(self, now: datetime) -> bytes:
        """One SND_UD: CI 0x5B, long header, mode-5 ciphertext."""
        self.access_number = (self.access_number + 1) & 0xFF
        self.fcb = not self.fcb
        ciphertext, blocks = encrypt_payload(self.records(now), AMIS_ADDRESS, self.access_number, self.key)
        header = AMIS_ADDRESS.to_header_bytes() + bytes((self.access_number, 0x00)) + configuration_word(MODE_AES_CBC_IV, blocks)
        c = CField.SND_UD | (FCB if self.fcb else 0)
        return encode_long(c, ADDRESS_SEARCH_TELEGRAM, CI_SND_UD_LONG, header + ciphertext)


async def run_amis_meter(
    stream: trio.abc.Stream,
    model: AmisMeterModel,
    interval: float = 1.0,
    wallclock: Callable[[], datetime] = vienna_now,
) -> None:
    """The meter on one link, with the handshake (MBusMeter): search, then a telegram a second while acks come."""
    machine = MBusMeter(lambda: [model.frame(wallclock())], push_interval=interval)
    status = LinkStatus("amis", "meter")

    async def already_open() -> trio.abc.Stream:
        return stream

    try:
        await run_link(already_open, MBusFramer(), machine, LinkHooks(lambda reading: None), status)
    except (LinkLost, trio.BrokenResourceError, trio.ClosedResourceError):
        return
