"""The two sessions of seed 002 ch. 4 as exchanges of frames, for replaying them to the client.

The manual prints the load-profile read of ch. 4.2 without its blocks 3-6. The buffer declares 59
rows, and 00:00 to 15:15 every quarter-hour would be 62, so three quarter-hours are missing; the
blocks here fill the gap consistently with what is printed: the power outage of the printed rows
(DataQuality 0x500, registers 3, 0, 0, 1) lasts until 12:00, the meter logs nothing at 12:15, 12:30
and 12:45, its 13:00 row marks the time discontinuity (LoggerStatus bit 6) and the outage
(DataQuality bit 10), and from then on the first and third registers climb to the printed 15:00 row
(189197 and 3375). Blocks hold whole rows, as the printed ones do (10 rows); the split before the
gap (9 rows) and after it (8) is the one thing chosen freely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from meterlink.protocols.dlms.axdr import Data, DataTag, encode_data, octet_string, structure
from meterlink.protocols.dlms.xdlms import GetRequestNext, GetResponseWithDataBlock
from meterlink.protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, Address, Control, Frame, FrameType

DATA = Path(__file__).parent / "data"
SEED = json.loads((DATA / "kamstrup_hdlc.json").read_text())
DAY = datetime(2013, 10, 25)
CLIENT, SERVER = Address.client(18), Address.server(16)


@dataclass(frozen=True)
class Exchange:
    step: str
    request: bytes
    response: bytes


def exchanges(session: str) -> list[Exchange]:
    """The seed's printed exchanges of one session ("public_association" or "lls_profile_blocks")."""
    return [Exchange(x["step"], bytes.fromhex(x["request"]), bytes.fromhex(x["response"])) for x in SEED[session]["exchanges"]]


def public_session() -> list[Exchange]:
    return exchanges("public_association")


def lls_session() -> list[Exchange]:
    """Ch. 4.2 complete: connect, associate, GET, the next-block requests for blocks 2 to 7 (3-6
    synthesized), disconnect."""
    printed = exchanges("lls_profile_blocks")
    connect, associate, get, next_2, next_7, disconnect = printed
    middle = [Exchange(f"GET-request-next, block {n - 1} -> block {n} (synthesized)", _next_request(n - 1), _block(n))
              for n in range(3, 7)]
    return [connect, associate, get, next_2, *middle, next_7, disconnect]


def missing_rows() -> list[datetime]:
    return [DAY + timedelta(hours=12, minutes=m) for m in (15, 30, 45)]


def row_times() -> list[datetime]:
    """The 59 rows' times: every quarter-hour from 00:00 to 15:15 but the three missing ones."""
    every = [DAY + timedelta(minutes=15 * n) for n in range(62)]
    return [moment for moment in every if moment not in missing_rows()]


def _row(moment: datetime, logger_status: int, data_quality: int, first: int, third: int) -> Data:
    stamp = bytes.fromhex(f"07dd0a1905{moment.hour:02x}{moment.minute:02x}00ff800080")
    return structure(
        octet_string(stamp), Data(DataTag.LONG_UNSIGNED, logger_status), Data(DataTag.DOUBLE_LONG_UNSIGNED, data_quality),
        Data(DataTag.INTEGER, 1), Data(DataTag.DOUBLE_LONG_UNSIGNED, first), Data(DataTag.DOUBLE_LONG_UNSIGNED, 0),
        Data(DataTag.DOUBLE_LONG_UNSIGNED, third), Data(DataTag.DOUBLE_LONG_UNSIGNED, 1),
    )


def synthesized_rows() -> list[Data]:
    """Rows 21-57 (05:00 to 14:45), the content of blocks 3-6."""
    rows = [_row(DAY + timedelta(hours=5, minutes=15 * n), 0, 0x500, 3, 0) for n in range(29)]  # 05:00-12:00
    for step in range(8):  # 13:00-14:45: 3 -> 189197 and 0 -> 3375 over the 8 steps to 15:00
        moment = DAY + timedelta(hours=13, minutes=15 * step)
        first, third = 3 + round((189197 - 3) * step / 8), round(3375 * step / 8)
        rows.append(_row(moment, 0x40 if step == 0 else 0, 0x400 if step == 0 else 0, first, third))
    return rows


_BLOCKS = {3: (0, 10), 4: (10, 20), 5: (20, 29), 6: (29, 37)}


def _block(number: int) -> bytes:
    start, end = _BLOCKS[number]
    raw = b"".join(encode_data(row) for row in synthesized_rows()[start:end])
    apdu = GetResponseWithDataBlock(False, number, raw).to_bytes()
    control = Control(FrameType.I, True, number % 8, (number + 1) % 8)
    return Frame(CLIENT, SERVER, control, LLC_RESPONSE + apdu).to_bytes()


def _next_request(acknowledged: int) -> bytes:
    control = Control(FrameType.I, True, (acknowledged + 1) % 8, (acknowledged + 1) % 8)
    return Frame(SERVER, CLIENT, control, LLC_REQUEST + GetRequestNext(acknowledged).to_bytes()).to_bytes()
