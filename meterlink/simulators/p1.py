"""A simulated Belgian P1 meter (seed 003 annex B layout, 3-phase with gas and water on M-Bus).

The meter pushes one telegram per interval (1 s, as e-MUCs meters do) to whoever listens. Its
values move like a household's: a base load with slow swings and noise, solar export around
noon, energy registers that integrate the power, tariff 1 by day and 2 by night.

With a key it sends each telegram encrypted as the Luxembourg Smarty and Energienetze Steiermark's
Sagemcom T210-D-r do (`P1Cipher`): a general-glo-ciphering APDU under the next frame counter, with
an authentication tag (SC 0x30) when it has an authentication key, without (SC 0x20) otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import trio

from ..protocols.dlms.security import encrypt
from ..protocols.p1 import telegram_bytes
from .clock import local_zone
from .serve import push_every

BRUSSELS = local_zone("Europe/Brussels")

HEADER = "FLU5\\253769484_A"
EQUIPMENT_ID = "1SAG3101021605"


SYSTEM_TITLE = b"SAG5" + bytes.fromhex("00000001")
"""Sagemcom's FLAG id, as the meters of Energienetze Steiermark and Luxembourg begin theirs."""


@dataclass
class P1Cipher:
    """How an encrypting meter wraps each telegram; its frame counter only goes up, across connections."""

    key: bytes
    auth_key: bytes | None = None
    frame_counter: int = 0x100

    def wrap(self, telegram: bytes) -> bytes:
        self.frame_counter += 1
        security_control = 0x30 if self.auth_key is not None else 0x20
        return encrypt(telegram, SYSTEM_TITLE, self.frame_counter, self.key, security_control, self.auth_key)


def p1_timestamp(moment: datetime) -> str:
    """YYMMDDhhmmssX in Belgian local time, X = S in summer time, W in winter time."""
    local = moment.astimezone(BRUSSELS)
    season = "S" if local.dst() else "W"
    return local.strftime("%y%m%d%H%M%S") + season


@dataclass
class P1MeterModel:
    """The meter's registers; `telegram` advances them to `now` and renders a telegram."""

    seed: int = 1
    equipment_id: str = EQUIPMENT_ID
    """0-0:96.1.1, the meter id readings carry: a fleet of simulated meters needs one each."""
    import_t1_wh: float = 34.0
    import_t2_wh: float = 15_758.0
    export_t1_wh: float = 0.0
    export_t2_wh: float = 11.0
    gas_m3: float = 112.384
    water_m3: float = 872.234
    _last: datetime | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def phase_powers_w(self, now: datetime) -> tuple[float, float, float]:
        """Signed active power per phase, positive = taken from the grid."""
        hour = now.astimezone(BRUSSELS).hour + now.minute / 60
        solar = max(0.0, math.sin((hour - 6) / 14 * math.pi)) * 2400
        base = 350 + 250 * math.sin(now.timestamp() / 97) + self._rng.gauss(0, 40)
        return base - solar / 3 + 120, base / 2 - solar / 3, base / 3 - solar / 3 + 60

    def telegram(self, now: datetime) -> bytes:
        phases = self.phase_powers_w(now)
        total = sum(phases)
        self._integrate(now, total)
        day_tariff = 7 <= now.astimezone(BRUSSELS).hour < 22
        voltages = [230 + self._rng.uniform(-4, 6) for _ in range(3)]
        stamp = p1_timestamp(now)
        lines = [
            "0-0:96.1.4(50217)",
            f"0-0:96.1.1({self.equipment_id.encode('ascii').hex().upper()})",
            f"0-0:1.0.0({stamp})",
            f"1-0:1.8.1({self.import_t1_wh / 1000:010.3f}*kWh)",
            f"1-0:1.8.2({self.import_t2_wh / 1000:010.3f}*kWh)",
            f"1-0:2.8.1({self.export_t1_wh / 1000:010.3f}*kWh)",
            f"1-0:2.8.2({self.export_t2_wh / 1000:010.3f}*kWh)",
            f"0-0:96.14.0({1 if day_tariff else 2:04d})",
            f"1-0:1.4.0({max(total, 0) / 1000:06.3f}*kW)",
            "1-0:1.6.0(200509134558S)(02.589*kW)",
            "0-0:98.1.0(3)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)"
            "(200401000000S)(200305122139S)(05.980*kW)(200301000000S)(200210035421W)(04.318*kW)",
            f"1-0:1.7.0({max(total, 0) / 1000:06.3f}*kW)",
            f"1-0:2.7.0({max(-total, 0) / 1000:06.3f}*kW)",
        ]
        for number, power in zip((21, 41, 61), phases):
            lines.append(f"1-0:{number}.7.0({max(power, 0) / 1000:06.3f}*kW)")
        for number, power in zip((22, 42, 62), phases):
            lines.append(f"1-0:{number}.7.0({max(-power, 0) / 1000:06.3f}*kW)")
        for number, volts in zip((32, 52, 72), voltages):
            lines.append(f"1-0:{number}.7.0({volts:05.1f}*V)")
        for number, power, volts in zip((31, 51, 71), phases, voltages):
            lines.append(f"1-0:{number}.7.0({abs(power) / volts:06.2f}*A)")
        lines += [
            "0-0:96.3.10(1)",
            "0-0:17.0.0(999.9*kW)",
            "1-0:31.4.0(999*A)",
            "0-0:96.13.0()",
            "0-1:24.1.0(003)",
            "0-1:96.1.1(37464C4F32313139303333373333)",
            "0-1:24.4.0(1)",
            f"0-1:24.2.3({stamp})({self.gas_m3:09.3f}*m3)",
            "0-2:24.1.0(007)",
            "0-2:96.1.1(3853414731323334353637383930)",
            f"0-2:24.2.1({stamp})({self.water_m3:09.3f}*m3)",
        ]
        return telegram_bytes(HEADER, lines)

    def _integrate(self, now: datetime, total_w: float) -> None:
        if self._last is not None:
            hours = max((now - self._last).total_seconds(), 0.0) / 3600
            day = 7 <= now.astimezone(BRUSSELS).hour < 22
            if total_w >= 0:
                if day:
                    self.import_t1_wh += total_w * hours
                else:
                    self.import_t2_wh += total_w * hours
            elif day:
                self.export_t1_wh -= total_w * hours
            else:
                self.export_t2_wh -= total_w * hours
            self.gas_m3 += 0.2 * hours
            self.water_m3 += 0.01 * hours
        self._last = now


async def push_telegrams(
    stream: trio.abc.SendStream,
    model: P1MeterModel,
    interval: float = 1.0,
    wallclock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    cipher: P1Cipher | None = None,
) -> None:
    """Send one telegram every `interval` seconds until the peer goes away or we are cancelled;
    encrypted by `cipher` where given."""
    if cipher is None:
        await push_every(stream, lambda: model.telegram(wallclock()), interval)
    else:
        await push_every(stream, lambda: cipher.wrap(model.telegram(wallclock())), interval)
