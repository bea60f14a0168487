"""What `meterlink detect` reads from a meter's bytes besides what its link's codec reads.

A P1 telegram is recognised by its CRC (DSMR 4/5, e-MUCs) or, without one, by parsing (DSMR 2.2/3);
an encrypted one by its general-glo-ciphering header, which names the meter in the clear.
A pushed DLMS telegram names its meter in the clear when it is ciphered: `DB|DC 08 <system title>`
opens the APDU in the telegram's first frame, also inside the first general-block-transfer block.
The system title begins with the maker's FLAG id, three letters registered with the DLMS UA. The
push interval is the median gap between the telegrams heard.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Sequence

from .dlms.axdr import AxdrError, decode_length
from .dlms.gbt import GENERAL_BLOCK_TRANSFER
from .dlms.security import GENERAL_DED_CIPHERING, GENERAL_GLO_CIPHERING
from .p1 import CrcStatus, FramerEvent, TelegramFramed


class Framing(enum.Enum):
    """What a meter's bytes were recognised as, and the `[[link]]` kind that reads them."""

    kind: str
    legacy: bool
    label: str

    def __new__(cls, value: str, kind: str, label: str, legacy: bool = False) -> Framing:
        framing = object.__new__(cls)
        framing._value_ = value
        framing.kind = kind
        framing.label = label
        framing.legacy = legacy
        return framing

    P1 = "p1", "p1", "P1 telegrams with CRC (DSMR 4/5, e-MUCs)"
    P1_LEGACY = "p1-legacy", "p1", "P1 telegrams without CRC (DSMR 2.2/3)", True
    P1_ENCRYPTED = "p1-encrypted", "p1", "encrypted P1 telegrams (general-glo-ciphering: Luxembourg, Steiermark)"
    MBUS = "mbus", "mbus", "M-Bus push (DLMS in M-Bus long frames)"
    HDLC_PUSH = "hdlc-push", "hdlc-push", "DLMS data-notifications in HDLC frames"


LEGACY_PROOF = 2
"""Data lines a telegram without CRC must read, and more than it skips, to prove DSMR 2.2/3."""


def p1_framing(event: FramerEvent) -> Framing | None:
    """The framing a P1 framer event proves: a CRC that matches, or a telegram without CRC whose
    lines mostly parse; None for anything else. Noise at a wrong setting can hold a '/', three
    letters and a '!', and the tolerant parser skips any line it cannot read, so parsing alone
    proves nothing."""
    if not isinstance(event, TelegramFramed):
        return None
    if event.crc is CrcStatus.OK:
        return Framing.P1
    telegram = event.telegram
    if event.crc is CrcStatus.ABSENT and telegram is not None:
        read = len(telegram.values)
        if read >= LEGACY_PROOF and read > len(telegram.skipped):
            return Framing.P1_LEGACY
    return None


SYSTEM_TITLE_LENGTH = 8
_BLOCK_HEADER = 6  # tag, block control, block number, block number ack; then the BER length
_CIPHERING_TAGS = (GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING)


def ciphered_title(head: bytes) -> bytes | None:
    """The system title of a ciphered APDU from its first bytes (a telegram's first frame carries
    them), also where they open a general-block-transfer block; None for a plaintext APDU."""
    if head[:1] == bytes((GENERAL_BLOCK_TRANSFER,)):
        try:
            _, data = decode_length(head, _BLOCK_HEADER)
        except AxdrError:
            return None
        head = head[data:]
    end = 2 + SYSTEM_TITLE_LENGTH
    if len(head) < end or head[0] not in _CIPHERING_TAGS or head[1] != SYSTEM_TITLE_LENGTH:
        return None
    return bytes(head[2:end])


MAKERS = {
    "ADN": "Aidon",
    "EBZ": "eBZ",
    "ECH": "Networked Energy Services",
    "ELS": "Elster",
    "EMH": "EMH metering",
    "ESY": "EasyMeter",
    "ISK": "Iskraemeco",
    "ITE": "Itron",
    "KAM": "Kamstrup",
    "KFM": "Kaifa",
    "LGZ": "Landis+Gyr",
    "SAG": "Sagemcom",
    "SAM": "Siemens (AMIS)",
    "SIE": "Siemens",
    "SMS": "Smart Metering Solutions (Changsha)",
    "ZPA": "ZPA Smart Energy",
}
"""Makers by FLAG id, shortened from the names the DLMS UA registers them under (its FLAG ID list,
https://www.dlms.com/flag-id/, exported by https://www.dlms.com/srv/lib/Export_Flagids.php; read
here in the copy of denpamusic/homeassistant-dlms-cosem, custom_components/dlms_cosem/
dlms_flagids.json at 00ed3c55). The meters of the README's table and the captures in tests/data
carry KFM, SAG, LGZ, ISK, SMS (the Siemens IM350 of Wiener Netze), ELS and KAM."""


def maker_of(system_title: bytes) -> str | None:
    """The maker a system title names: by the FLAG id table, else the three letters themselves
    (FLAG ids are registered in every case, ABC standing for abc too); None when it holds none."""
    flag = system_title[:3]
    if len(flag) != 3 or not flag.isalpha():
        return None
    letters = flag.decode("ascii").upper()
    return MAKERS.get(letters, letters)


def push_interval(arrivals: Sequence[float]) -> float | None:
    """Seconds between telegrams: the median gap between arrivals (one late telegram does not
    move it), to a tenth of a second; None with fewer than two, or when they came at once (read
    together from a buffer), which says nothing of the meter's interval."""
    if len(arrivals) < 2:
        return None
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    interval = round(statistics.median(gaps), 1)
    return interval if interval > 0 else None
