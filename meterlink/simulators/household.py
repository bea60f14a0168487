"""A household's power and the registers it drives, as the simulated DLMS push meters show them.

Power swings slowly around 600 W with some noise (taken from the grid while positive), three phase
voltages near 229 V, the currents that carry a third of the power each, and energy registers that
integrate it between samples.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sample:
    power_w: float
    """Net active power, positive when taken from the grid."""
    decivolts: tuple[int, ...]
    centiamps: tuple[int, ...]
    """Per phase, L1 to L3."""
    import_wh: float
    export_wh: float
    reactive_import_varh: float
    reactive_export_varh: float


@dataclass
class Household:
    seed: int = 1
    import_wh: float = 4_412_345.0
    export_wh: float = 1_234.0
    reactive_import_varh: float = 98_765.0
    reactive_export_varh: float = 4_321.0
    _last: datetime | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def sample(self, now: datetime) -> Sample:
        """The values at `now`; the registers first take in the energy since the last sample."""
        power = 600 + 400 * math.sin(now.timestamp() / 120) + self._rng.gauss(0, 30)
        self._integrate(now, power)
        volts = tuple(2290 + self._rng.randint(-40, 60) for _ in range(3))
        amps = tuple(int(abs(power) / 3 / (v / 10) * 100) for v in volts)
        return Sample(power, volts, amps, self.import_wh, self.export_wh, self.reactive_import_varh,
                      self.reactive_export_varh)

    def _integrate(self, now: datetime, power_w: float) -> None:
        if self._last is not None:
            hours = max((now - self._last).total_seconds(), 0.0) / 3600
            if power_w >= 0:
                self.import_wh += power_w * hours
            else:
                self.export_wh -= power_w * hours
            self.reactive_import_varh += 40 * hours
        self._last = now
