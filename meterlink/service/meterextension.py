"""The wire format of the MeterExtension #1 REST API (seed 000 ch. 3), as pure models and functions.

`POST /api` takes `{"cmd": ..., "id": ...}` and answers JSON; the commands and answers are the
pydantic models below, and `meter_block` re-expresses meterlink readings in the MeterExtension's
`meter_reading` form (OBIS, scale, COSEM unit code, entries as strings; seed 000 ch. 3.5.1, 5).

Where the seed's example is not valid JSON, meterlink sends this instead:

- Unknown command (ch. 3.2.1): the seed shows `{"error":"unkown_cmd","result","id":"123"}`, where
  `"result"` has no value. meterlink sends `{"error": "unkown_cmd", "result": "ERROR", "id": "123"}`,
  keeping the seed's spelling "unkown_cmd", with HTTP status 200 like every other command's answer,
  because a MeterExtension client reads the `result` field of the JSON answer.
- get_ip_info (ch. 3.4.4): the seed's answer is the text `IP: ... GW: ... Net Mask: ...`. meterlink
  sends `{"IP": "192.168.0.158", "GW": "192.168.0.1", "Net Mask": "255.255.255.0", "result": "OK",
  "id": "123"}`, with the same three names as keys.
- meter_reading, empty (ch. 3.5.1): the seed shows `{"meter":[{"meterid":"lu","data":[{"}] }], ...}`
  (a stray `"`). With no meter seen yet meterlink sends `{"meter": [], "result": "OK", "id": "123"}`.
- meter_reading, filled (ch. 3.5.1): the seed's example closes the `data` list, the meter object and
  the `meter` list after four OBIS objects (`...]}],`), goes on with three more OBIS objects, and
  ends with `{"result": "OK", "id": "123"}` as an object of its own. meterlink sends one object:
  `{"meter": [{"meterid": "...", "data": [{"OBIS": ..., "scale": ..., "unit": ..., "entry":
  [{"val": ..., "ts": ...}, ...]}, ...]}], "result": "OK", "id": "123"}`. The example also breaks
  the key `"ts` / `"` across lines; meterlink sends `"ts"`.
- meter_reading, the Response line (ch. 3.5.1): `"result":"OK` / `","id":"123"}` is broken across
  two lines inside the string, and `"data":[...]` is a placeholder; meterlink sends `"result": "OK"`.
- system_status (ch. 3.4.1): `"hw-` / `version"` and `"` / `result"` are broken across lines
  inside the strings; meterlink sends the keys `"hw-version"` and `"result"`. (wifi_status, ch.
  3.3.2, breaks only between tokens and is valid JSON.)
- wifi_config (ch. 3.3.1, 3.3.3) and meter_setkey (ch. 3.5.2): the commands are printed with a line
  break inside the password string (3.3.1) or the `"password"` key (3.3.3), and with a stray `}`
  after the object (3.5.2); meterlink reads ordinary JSON objects.
- The curl examples of ch. 3.4.5 break the URLs across lines (`"http` / `://192.168.2.228...`) and
  most lack the closing `"` of the `-d` argument; the bodies they mean are ordinary JSON objects,
  accepted whatever the Content-Type says (curl sends application/x-www-form-urlencoded).

Answers carry `"id"` only when the command had one (the curl examples send none). Errors that the
seed does not document are `{"error": "...", "message": "...", "result": "ERROR"}`, plus `"id"` when
known: 4xx for the client's mistakes (bad JSON, wrong types, missing credentials, a host not allowed),
firmware_update answers OK once the update has started (its progress and result are in system_status's
`update`), 409 while another one runs, 422 for a URL or cert name it cannot use, and 200 with
`"result": "ERROR"`, `"error": "firmware_update_not_available"` where the service does not update itself
(`meterlink demo`); 502/504 when download_file or request_post cannot reach their host.

meter_setkey (ch. 3.5.2) takes meterlink's `auth_key` and `link` beside the seed's `key`; its answer
adds `"link"`, the link the keys went to, and its 422 `link_required` adds `"links"`, the links that
take a key when there are several and none was named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..protocols.readings import Reading, Value, non_finite

# --- units (seed 000 ch. 5) -----------------------------------------------------------------------

NO_UNIT = 255
"""COSEM "no unit": counts and text."""
OTHER_UNIT = 254
"""COSEM "other unit": a unit text the table below does not know; the value is still sent."""

UNIT_TEXTS: dict[str, tuple[int, int]] = {
    "Wh": (30, 0), "kWh": (30, 3), "MWh": (30, 6),
    "W": (27, 0), "kW": (27, 3), "MW": (27, 6),
    "varh": (32, 0), "kvarh": (32, 3), "kVArh": (32, 3), "kVarh": (32, 3),
    "var": (29, 0), "kvar": (29, 3), "kVAr": (29, 3), "kVar": (29, 3),
    "VAh": (31, 0), "kVAh": (31, 3),
    "VA": (28, 0), "kVA": (28, 3),
    "V": (35, 0), "A": (33, 0), "Hz": (44, 0),
    "m3": (13, 0), "m³": (13, 0), "m3/h": (15, 0), "l": (19, 0),
    "J": (25, 0), "kJ": (25, 3), "MJ": (25, 6), "GJ": (25, 9),
    "s": (7, 0), "min": (6, 0), "h": (5, 0), "d": (4, 0),
    "°C": (9, 0), "K": (52, 0), "%": (56, 0), "kg": (20, 0), "bar": (24, 0), "Pa": (23, 0),
}
"""Unit text as P1 meters write it -> (COSEM unit code, decimal shift of the scale).

The MeterExtension names units by COSEM code only, and the code table has no kilo units: 1.955 kWh
(raw 1955, scaler -3) is sent as raw 1955, scale 0, unit 30 (Wh).
"""


@dataclass(frozen=True, slots=True)
class Expressed:
    """One value as the MeterExtension writes it: `val` times ten to `scale`, in COSEM unit `unit`."""

    val: str
    scale: int
    unit: int


def express(value: Value) -> Expressed | None:
    """A reading value in MeterExtension terms; None for values it cannot carry (profiles, null)."""
    if isinstance(value.value, tuple) or value.value is None:
        return None
    if isinstance(value.value, str):
        return Expressed(value.value, 0, NO_UNIT)
    number = _raw_scaler(value)
    if number is None:  # a float that is not finite, spelled as in every other reading
        return Expressed(non_finite(value.value) or str(value.value), 0, NO_UNIT)
    raw, scaler = number
    code, shift = _unit_code(value)
    return Expressed(str(raw), scaler + shift, code)


def _raw_scaler(value: Value) -> tuple[int, int] | None:
    """The integer and power of ten of a number; None for a float that is not finite."""
    if value.raw is not None:
        return value.raw, value.scaler or 0
    if isinstance(value.value, int):
        return int(value.value), 0
    exact = Decimal(repr(value.value))
    if not exact.is_finite():
        return None
    exponent = int(exact.as_tuple().exponent)
    return int(exact.scaleb(-exponent)), exponent


def _unit_code(value: Value) -> tuple[int, int]:
    if value.unit_code is not None:
        return value.unit_code, 0
    if not value.unit:
        return NO_UNIT, 0
    return UNIT_TEXTS.get(value.unit, (OTHER_UNIT, 0))


# --- meter_reading (seed 000 ch. 3.5.1) -------------------------------------------------------------


class Entry(BaseModel):
    val: str
    ts: str = Field(description="Unix seconds at which the adapter received the reading")


class ObisData(BaseModel):
    OBIS: str = Field(examples=["1-0:32.7.0.255"])
    scale: str = Field(description="power of ten to multiply val with", examples=["-1"])
    unit: str = Field(description="COSEM unit code (seed 000 ch. 5); 255 for none", examples=["35"])
    entry: list[Entry] = Field(description="the readings of the last 60 s, oldest first")


class MeterBlock(BaseModel):
    meterid: str
    data: list[ObisData]


def meter_block(link: str, window: Sequence[Reading]) -> MeterBlock:
    """One meter: a data object per OBIS code of its latest reading, entries from `window`.

    `window` is the meter's readings of the last 60 s, oldest first, never empty: a meter silent
    for longer is not shown at all. Profile values (a list of rows, such as P1 0-0:98.1.0) are
    left out: an entry holds one number; so are values without an OBIS code, which a data object
    cannot name. An entry whose scale or unit differs from the latest reading's is left out too, so
    every `val` of a data object is read with the same `scale` and `unit`.
    """
    readings = list(window)
    latest = readings[-1]
    by_obis = [{value.obis: value for value in reading.values} for reading in readings]
    data = []
    for value in latest.values:
        shown = express(value) if value.obis is not None else None
        if shown is None:
            continue
        entries = []
        for reading, values in zip(readings, by_obis):
            past = values.get(value.obis)
            old = express(past) if past is not None else None
            if old is not None and (old.scale, old.unit) == (shown.scale, shown.unit):
                entries.append(Entry(val=old.val, ts=str(int(reading.received_at or 0))))
        data.append(ObisData(OBIS=value.obis, scale=str(shown.scale), unit=str(shown.unit), entry=entries))
    return MeterBlock(meterid=latest.meter_id or link, data=data)


# --- commands (seed 000 ch. 3.3-3.5) ----------------------------------------------------------------

CommandId = Union[str, int]

_HTTP_URL: dict[str, Any] = {"format": "uri", "pattern": "^https?://[^/?#]+"}
"""Schema only: the API itself answers a bad URI with 422 invalid_uri."""
_HEX_KEY: dict[str, Any] = {"pattern": "^[0-9A-Fa-f]{32}$"}
"""Schema only: the API itself answers a bad key with 400 (and takes spaces or colons between digits)."""


class BaseCommand(BaseModel):
    # strict: "cmd": 5 or "key": 7 is an error, never coerced; extra keys (such as the seed's
    # optional "cert") are ignored, as a MeterExtension client may send more than we read.
    model_config = ConfigDict(strict=True, extra="ignore")

    id: CommandId | None = Field(default=None, description="echoed in the answer")


class MeterReadingCommand(BaseCommand):
    cmd: Literal["meter_reading"]


class MeterSetKeyCommand(BaseCommand):
    cmd: Literal["meter_setkey"]
    key: SecretStr = Field(
        description="the meter's AES-128 key from the grid operator (GUEK): 32 hex digits",
        json_schema_extra=_HEX_KEY,
    )
    auth_key: SecretStr | None = Field(
        default=None, json_schema_extra=_HEX_KEY,
        description="meterlink: the grid operator's second key (authentication key, AK or GAK), for meters "
                    "whose telegrams carry an authentication tag: 32 hex digits",
    )
    link: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="meterlink: the link the keys are for; may be left out when exactly one configured link "
                    "takes a key (422 link_required names them otherwise)",
    )
    meter_id: str | None = Field(
        default=None, pattern=r"^[0-9A-Fa-f]{8}$",
        description="meterlink: on a wireless M-Bus link (kind wmbus), the meter the key is for: its identification "
                    "number, 8 digits as printed on it; without it the key serves every meter of the link",
    )


class WifiConfigCommand(BaseCommand):
    cmd: Literal["wifi_config"]
    ssid: str = Field(min_length=1, max_length=32)
    password: SecretStr | None = Field(default=None, min_length=8, max_length=63,
                                       description="WPA2 passphrase; leave out for an open network")
    mode: Literal["sta", "sta_ap"] = "sta"


class WifiStatusCommand(BaseCommand):
    cmd: Literal["wifi_status"]


class WifiScanCommand(BaseCommand):
    """meterlink: the networks the adapter can reach (seed 000 ch. 3.1.1 names the look-up, not its command)."""

    cmd: Literal["wifi_scan"]


class SystemStatusCommand(BaseCommand):
    cmd: Literal["system_status"]


class GetIpInfoCommand(BaseCommand):
    cmd: Literal["get_ip_info"]


class SystemRestartCommand(BaseCommand):
    cmd: Literal["system_restart"]


class FactoryResetCommand(BaseCommand):
    cmd: Literal["meter_factreset"]


class FirmwareUpdateCommand(BaseCommand):
    """Seed 000 ch. 3.4.5: fetch a signed meterlink bundle and update to it (README, "Updating meterlink")."""

    cmd: Literal["firmware_update"]
    firmware_uri: str = Field(max_length=2048, description="http or https URL of a signed bundle; "
                              "the host rules of download_file do not apply, the signature does",
                              json_schema_extra=_HTTP_URL)
    cert: str | None = Field(default=None, max_length=128,
                             description="a CA file in the adapter's CA directory (default ca_cert.pem; "
                                         "the system's CAs when it is absent)")


class DownloadFileCommand(BaseCommand):
    cmd: Literal["download_file"]
    file_uri: str = Field(max_length=2048, description="http or https URL on a host listed in http.fetch_hosts",
                          json_schema_extra=_HTTP_URL)
    cert: str | None = Field(default=None, description="ignored: the system's CA certificates are used")


class RequestPostCommand(BaseCommand):
    cmd: Literal["request_post"]
    file_uri: str = Field(max_length=2048, description="http or https URL on a host listed in http.fetch_hosts",
                          json_schema_extra=_HTTP_URL)
    message: str
    cert: str | None = Field(default=None, description="ignored: the system's CA certificates are used")


COMMAND_MODELS: tuple[type[BaseCommand], ...] = (
    MeterReadingCommand, MeterSetKeyCommand, WifiConfigCommand, WifiStatusCommand, WifiScanCommand,
    SystemStatusCommand, GetIpInfoCommand, SystemRestartCommand, FactoryResetCommand,
    FirmwareUpdateCommand, DownloadFileCommand, RequestPostCommand,
)

Command = Annotated[Union[COMMAND_MODELS], Field(discriminator="cmd")]  # type: ignore[valid-type]
"""The body of POST /api, as documented in the OpenAPI description."""

COMMANDS: dict[str, type[BaseCommand]] = {get_args(model.model_fields["cmd"].annotation)[0]: model for model in COMMAND_MODELS}
"""cmd -> its model."""

READ_COMMANDS = frozenset({"meter_reading", "wifi_status", "wifi_scan", "system_status", "get_ip_info"})
"""Commands that only read; every other command configures the adapter (seed 001 ch. C.1)."""


# --- answers ------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The answer as sent: the seed's names, `result` and then `id` (only when given) last."""
        body = self.model_dump(by_alias=True, exclude_none=True)
        tail = {name: body.pop(name) for name in ("result", "id") if name in body}
        return body | tail


class OkAnswer(_Answer):
    result: Literal["OK"] = "OK"
    id: CommandId | None = None


class MeterSetKeyAnswer(OkAnswer):
    link: str = Field(description="meterlink: the link the keys were stored for")


class MeterReadingAnswer(OkAnswer):
    meter: list[MeterBlock]


class WifiStatusAnswer(OkAnswer):
    ssid: str = Field(description="the home network joined or configured, else the adapter's access point")
    rssi: str = Field(examples=["-63"])
    ap_mac: str = Field(alias="ap-mac")
    IP: str
    backend: str = Field(description="meterlink: the Wi-Fi backend, 'networkmanager' or 'simulated'")
    state: str = Field(description="meterlink: the network machine's state, as diagrams/NetworkMachine names it")
    access_point: str | None = Field(default=None, description="meterlink: the access point's SSID while it is up")
    window_left: int = Field(description="meterlink: seconds the access point window has left; 0 when it is over")
    mode: Literal["sta", "sta_ap"] = Field(description="meterlink: the mode of the last wifi_config")
    reason: str | None = Field(default=None, description="meterlink: why the last join failed, until one succeeds")


class ScannedNetworkOut(BaseModel):
    ssid: str
    rssi: str
    security: str = Field(description="as NetworkManager names it (WPA2, WPA1 WPA2, ...); empty for an open network")


class WifiScanAnswer(OkAnswer):
    networks: list[ScannedNetworkOut]


class UpdateStatusOut(BaseModel):
    """firmware_update's progress and the last update's result (recorded across restarts)."""

    state: str
    received: int
    expected: int | None = None
    version: str | None = None
    last_result: Literal["restarting", "confirmed", "refused", "rolled_back"] | None = None
    last_reason: str | None = None
    last_version: str | None = None


class SystemStatusAnswer(OkAnswer):
    model: str
    sw_version: str = Field(alias="sw-version")
    hw_version: str = Field(alias="hw-version")
    mac: str
    sys_ts: str = Field(alias="sys-ts", description="Unix seconds")
    network_backend: str = Field(description="meterlink: the Wi-Fi backend chosen at start, or 'none'")
    network_state: str | None = Field(default=None, description="meterlink: the network machine's state")
    update: UpdateStatusOut | None = Field(default=None, description="meterlink: the self-update, where the service runs one")


class IpInfoAnswer(OkAnswer):
    IP: str
    GW: str
    net_mask: str = Field(alias="Net Mask")


class DownloadAnswer(OkAnswer):
    size: int
    sha256: str


class RequestPostAnswer(OkAnswer):
    status: int = Field(description="the HTTP status the target answered")


class ErrorAnswer(_Answer):
    error: str
    message: str
    result: Literal["ERROR"] = "ERROR"
    id: CommandId | None = None


class LinkRequiredAnswer(ErrorAnswer):
    """meter_setkey without `link` where several links take a key."""

    error: Literal["link_required"] = "link_required"
    links: list[str] = Field(description="the configured links that take a key; name one of them as link")


class UnknownCommandAnswer(_Answer):
    error: Literal["unkown_cmd"] = "unkown_cmd"
    result: Literal["ERROR"] = "ERROR"
    id: CommandId | None = None


Answer = Union[
    MeterReadingAnswer, WifiStatusAnswer, WifiScanAnswer, SystemStatusAnswer, IpInfoAnswer,
    DownloadAnswer, RequestPostAnswer, MeterSetKeyAnswer, OkAnswer, UnknownCommandAnswer,
]
