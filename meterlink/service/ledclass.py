"""Linux's LED class (Documentation/leds/leds-class.rst): `/sys/class/leds/NAME/brightness` and `trigger`.

The writer only writes what it is told. It takes an LED from the kernel's triggers (`trigger` =
`none`, so a heartbeat or mmc trigger set by the board does not fight the service) and switches it
with `brightness` (`max_brightness`, or 0). Blinking is done by the LED actor switching brightness:
the kernel's `timer` trigger creates its `delay_on`/`delay_off` files afresh, owned by root with
mode 0644, each time it is chosen, so a service that is not root could not set its rate (the udev
rule of deploy/ can only open `brightness` and `trigger`, which exist from the LED's creation on).

A missing LED or a failed write is logged once per LED and never stops the service; a later write
tries again, so an LED that appears late (a module loaded after the service) works from then on.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("meterlink.leds")

SYSFS_LEDS = Path("/sys/class/leds")


class LedClass:
    """The LEDs under `root` (normally /sys/class/leds; a stand-in directory in the demo and tests)."""

    def __init__(self, root: Path = SYSFS_LEDS) -> None:
        self.root = root
        self._taken: set[str] = set()
        """LEDs whose trigger was set to none."""
        self._maximum: dict[str, str] = {}
        self._complained: set[str] = set()

    def set(self, name: str, lit: bool) -> bool:
        """Switch the LED on (at its maximum brightness) or off; False when that failed (logged once)."""
        directory = self.root / name
        try:
            if name not in self._taken:
                (directory / "trigger").write_text("none\n")
                self._taken.add(name)
                self._maximum[name] = _maximum(directory)
            (directory / "brightness").write_text((self._maximum[name] if lit else "0") + "\n")
        except OSError as error:
            if name not in self._complained:
                self._complained.add(name)
                log.error("LED %s: cannot write %s (%s); the service runs on without it", name,
                          error.filename or directory, error.strerror or type(error).__name__)
            return False
        return True


def _maximum(directory: Path) -> str:
    """The LED's `max_brightness`; 1 when it cannot be read (the kernel clamps what is written to it)."""
    try:
        text = (directory / "max_brightness").read_text().strip()
    except OSError:
        return "1"
    return text if text.isdigit() and int(text) > 0 else "1"


def stand_in(root: Path, names: list[str]) -> Path:
    """A directory that stands in for /sys/class/leds with these LEDs, as the kernel shows them at
    boot: trigger `[none] timer heartbeat`, brightness 0, max_brightness 255."""
    for name in names:
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "trigger").write_text("[none] timer heartbeat\n")
        (directory / "brightness").write_text("0\n")
        (directory / "max_brightness").write_text("255\n")
    return root
