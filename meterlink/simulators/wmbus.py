"""A simulated Linz Netz NES meter on wireless M-Bus, heard through a simulated receiver.

The meter (seed 001 ch. A, "Linz network, NES MTR1000/3000 Gen 4, W-MBUS") sends T1 frames of
format A: C 0x44 (SND_NR), manufacturer NES, its identification, CI 0x7A (short header), OMS mode
5, with records for its clock, A+ and A- (total and tariffs 1 and 2), P+ and P-, and the phase
voltages (the layout is made up from what the issue lists: no NES telegram is published); each
telegram is sent twice, as radio meters repeat themselves, with the same access number. The
receivers wrap each frame as the real ones do (`protocols.wmbus_receivers`) and answer their
set-up commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from ..protocols.mbus_app import (CI_RSP_UD_SHORT, MODE_AES_CBC_IV, DeviceAddress, configuration_word, encrypt_payload,
                                  identification_bytes, manufacturer_value)
from ..protocols.wmbus import C_SND_NR, with_crcs_a
from ..protocols.wmbus_receivers import (AMB_DATA_IND, AMB_GET_REQ, AMB_SET_MODE_REQ, AMB_SET_REQ, IM_DEVMGMT,
                                         IM_RADIOLINK, IM_SET_CONFIG_REQ, IM_SET_CONFIG_RSP, IM_WMBUS_MSG_IND, Receiver, amb_command,
                                         cul_line, im871a_message, rtl_wmbus_line)
from .household import Household
from .kaifa import vienna_now

NES_ID = "30071234"
NES_DEMO_KEY = bytes.fromhex("A1B2C3D4E5F60718293A4B5C6D7E8F90")
"""The simulated meter's key (made up, not any real meter's)."""
REPEATS = 2


@dataclass
class NesMeterModel:
    meter_id: str = NES_ID
    key: bytes = NES_DEMO_KEY
    seed: int = 4
    access_number: int = 0x40
    household: Household = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(self.seed)

    @property
    def address(self) -> DeviceAddress:
        return DeviceAddress(manufacturer_value("NES"), identification_bytes(self.meter_id), 0x04, 0x02)

    def records(self, now: datetime) -> bytes:
        sample = self.household.sample(now)
        power = int(sample.power_w)

        def u32(value: float) -> bytes:
            return int(value).to_bytes(4, "little")

        half = sample.import_wh / 2
        volts = b"".join(bytes.fromhex(f"02FDC8FC0{phase}") + decivolts.to_bytes(2, "little")
                         for phase, decivolts in enumerate(sample.decivolts, 1))
        year = now.year - 2000
        date_time = bytes((now.minute, now.hour, now.day | (year & 0x07) << 5, now.month | (year & 0x78) << 1))
        return (bytes.fromhex("046D") + date_time  # type F: minute, hour, day, month with the year's bits
                + bytes.fromhex("0403") + u32(sample.import_wh)
                + bytes.fromhex("841003") + u32(half)
                + bytes.fromhex("842003") + u32(sample.import_wh - half)
                + bytes.fromhex("04833C") + u32(sample.export_wh)
                + bytes.fromhex("042B") + u32(max(power, 0))
                + bytes.fromhex("04AB3C") + u32(max(-power, 0))
                + volts)

    def frame(self, now: datetime) -> bytes:
        """One T1 frame, L first, without CRCs."""
        self.access_number = (self.access_number + 1) & 0xFF
        ciphertext, blocks = encrypt_payload(self.records(now), self.address, self.access_number, self.key)
        body = (bytes((C_SND_NR,)) + self.address.to_link_bytes() + bytes((CI_RSP_UD_SHORT, self.access_number, 0x00))
                + configuration_word(MODE_AES_CBC_IV, blocks) + ciphertext)
        return bytes((len(body),)) + body


def on_air(receiver: Receiver, frame: bytes, meter_id: str) -> bytes:
    """A frame as `receiver` hands it to the computer."""
    if receiver is Receiver.IM871A:
        return im871a_message(IM_RADIOLINK, IM_WMBUS_MSG_IND, frame[1:], rssi=0x5A)
    if receiver is Receiver.AMB8465:
        return amb_command(AMB_DATA_IND, frame[1:] + bytes((0xB4,)))
    if receiver is Receiver.CUL:
        return cul_line(with_crcs_a(frame))
    return rtl_wmbus_line(frame, meter_id, datetime.now().strftime("%Y-%m-%d %H:%M:%S.000"))


def answer(receiver: Receiver, command: bytes) -> bytes:
    """What the stick answers to a set-up command (none for a CUL's X21 and brt, nor for noise)."""
    if receiver is Receiver.IM871A and command[:3] == bytes((0xA5, IM_DEVMGMT, IM_SET_CONFIG_REQ)):
        return im871a_message(IM_DEVMGMT, IM_SET_CONFIG_RSP, b"\x00")
    if receiver is Receiver.AMB8465 and command[:2] == bytes((0xFF, AMB_GET_REQ)):
        return amb_command(AMB_GET_REQ | 0x80, command[3:5] + b"\x00")  # RSSI_Enable 0: as shipped
    if receiver is Receiver.AMB8465 and command[:2] in (bytes((0xFF, AMB_SET_REQ)), bytes((0xFF, AMB_SET_MODE_REQ))):
        return amb_command(command[1] | 0x80, b"\x00")
    if receiver is Receiver.CUL and command.strip() == b"V":
        return b"V 1.67 nanoCUL868\r\n"
    return b""


async def run_stick(
    stream: trio.abc.Stream,
    receiver: Receiver,
    model: NesMeterModel,
    interval: float = 10.0,
    wallclock: Callable[[], datetime] = vienna_now,
) -> None:
    """The receiver on one link: answers set-up commands, hands over each telegram (twice) as heard."""

    sending = trio.Lock()  # answers and telegrams share the line

    async def answer_commands() -> None:
        while data := await stream.receive_some():
            # Commands arrive whole in practice; a CUL's come as lines.
            for command in data.split(b"\n") if receiver is Receiver.CUL else [data]:
                if reply := answer(receiver, command):
                    async with sending:
                        await stream.send_all(reply)

    async def push() -> None:
        while True:
            frame = model.frame(wallclock())
            for _ in range(REPEATS):
                async with sending:
                    await stream.send_all(on_air(receiver, frame, model.meter_id))
            await trio.sleep(interval)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push)
            await answer_commands()
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
