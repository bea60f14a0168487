"""The BSM-WS36A's SunSpec models and signed snapshots (seed 004 ch. 10.1, 17.3, 17.5, appendix D).

Model layouts are given by offset from each model's ID register, as the register addresses of
ch. 17.3 place them. Where the seed's printed payload lengths disagree with its addresses (64900:
300 in the overview, 292 in its table; snapshots 254 registers apart while L says 260; OCMF 498 in
the overview, 372 in the tables), the addresses and the model chain the meter reports agree (300,
252, 498; bsm-python's model list of a real meter says the same), so the last point of a model -
the BLOB or the OCMF string - takes whatever length the chain gives.

A snapshot is signed over an abstract representation (appendix D): each number as a 32-bit
big-endian value (signed or not), a signed 8-bit scale factor and an unsigned 8-bit COSEM unit
code (255: none); each string as its 32-bit byte length and its bytes. The SHA-256 of that is signed
with ECDSA on secp256r1; the signature and the public key are DER.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import ProtocolError
from .sunspec import Layout, ModelInstance, Point, PointType, SunSpecError, blob, decode_model

T = PointType

COMMON = Layout(1, "Common", (
    Point("Mn", 2, 16, T.STRING), Point("Md", 18, 16, T.STRING), Point("Opt", 34, 8, T.STRING),
    Point("Vr", 42, 8, T.STRING), Point("SN", 50, 16, T.STRING), Point("DA", 66, 1, T.UINT16, writable=True),
    Point("Pad", 67, 1, T.PAD),
))

AC_METER = Layout(203, "AC Meter", (
    Point("A", 2, 1, T.INT16, "A", "A_SF"), Point("AphA", 3, 1, T.INT16, "A", "A_SF"),
    Point("AphB", 4, 1, T.INT16, "A", "A_SF"), Point("AphC", 5, 1, T.INT16, "A", "A_SF"), Point("A_SF", 6, 1, T.SUNSSF),
    Point("PhVphA", 8, 1, T.INT16, "V", "V_SF"), Point("PhVphB", 9, 1, T.INT16, "V", "V_SF"),
    Point("PhVphC", 10, 1, T.INT16, "V", "V_SF"), Point("V_SF", 15, 1, T.SUNSSF),
    Point("Hz", 16, 1, T.INT16, "Hz", "Hz_SF"), Point("Hz_SF", 17, 1, T.SUNSSF),
    Point("W", 18, 1, T.INT16, "W", "W_SF"), Point("WphA", 19, 1, T.INT16, "W", "W_SF"),
    Point("WphB", 20, 1, T.INT16, "W", "W_SF"), Point("WphC", 21, 1, T.INT16, "W", "W_SF"), Point("W_SF", 22, 1, T.SUNSSF),
    Point("TotWhImp", 46, 2, T.ACC32, "Wh", "TotWh_SF"), Point("TotWh_SF", 54, 1, T.SUNSSF),
    Point("Evt", 105, 2, T.BITFIELD32),
))

SIGNING_METER = Layout(64900, "Signing Meter", (
    Point("ErrM", 2, 4, T.STRING), Point("SNM", 6, 8, T.STRING), Point("SNC", 14, 8, T.STRING),
    Point("VrM", 22, 8, T.STRING), Point("VrC", 30, 8, T.STRING), Point("MA1", 38, 8, T.STRING),
    Point("MA2", 46, 8, T.STRING), Point("RCR", 54, 2, T.UINT32, "Wh", "RCR_SF"), Point("RCR_SF", 56, 1, T.SUNSSF),
    Point("PDCnt", 57, 2, T.UINT32), Point("RCnt", 59, 2, T.UINT32), Point("OS", 61, 2, T.UINT32, "s"),
    Point("Epoch", 63, 2, T.UINT32, "s", writable=True), Point("TZO", 65, 1, T.INT16, "min", writable=True),
    Point("EpochSetCnt", 66, 2, T.UINT32), Point("EpochSetOS", 68, 2, T.UINT32, "s"),
    Point("DI", 70, 1, T.UINT16), Point("DO", 71, 1, T.UINT16, writable=True),
    Point("DIChgOS", 72, 2, T.UINT32, "s"), Point("DIChgEpoch", 74, 2, T.UINT32, "s"), Point("DIChgTZO", 76, 1, T.INT16, "min"),
    Point("DOChgOS", 77, 2, T.UINT32, "s"), Point("DOChgEpoch", 79, 2, T.UINT32, "s"), Point("DOChgTZO", 81, 1, T.INT16, "min"),
    Point("Meta1", 82, 70, T.STRING, writable=True), Point("Meta2", 152, 50, T.STRING, writable=True),
    Point("Meta3", 202, 50, T.STRING, writable=True),
    Point("NPK", 252, 1, T.UINT16), Point("BPK", 253, 1, T.UINT16), Point("PK", 254, 48, T.BLOB),
))

FIRMWARE_HASH = Layout(64902, "Communication Module Firmware Hash", (
    Point("Typ", 2, 1, T.ENUM16), Point("NB", 3, 1, T.UINT16), Point("BB", 4, 1, T.UINT16),
    Point("Pad", 5, 1, T.PAD), Point("B", 6, 16, T.BLOB),
))

SNAPSHOT = Layout(64901, "Signed Snapshot", (
    Point("Typ", 2, 1, T.ENUM16), Point("St", 3, 1, T.ENUM16, writable=True),
    Point("RCR", 4, 2, T.ACC32, "Wh", "Wh_SF"), Point("TotWhExp", 6, 2, T.ACC32, "Wh", "Wh_SF"), Point("Wh_SF", 8, 1, T.SUNSSF),
    Point("W", 9, 1, T.INT16, "W", "W_SF"), Point("W_SF", 10, 1, T.SUNSSF), Point("MA1", 11, 8, T.STRING),
    Point("RCnt", 19, 2, T.UINT32), Point("OS", 21, 2, T.UINT32, "s"), Point("Epoch", 23, 2, T.UINT32, "s"),
    Point("TZO", 25, 1, T.INT16, "min"), Point("EpochSetCnt", 26, 2, T.UINT32), Point("EpochSetOS", 28, 2, T.UINT32, "s"),
    Point("DI", 30, 1, T.UINT16), Point("DO", 31, 1, T.UINT16),
    Point("Meta1", 32, 70, T.STRING), Point("Meta2", 102, 50, T.STRING), Point("Meta3", 152, 50, T.STRING),
    Point("Evt", 202, 2, T.BITFIELD32), Point("NSig", 204, 1, T.UINT16), Point("BSig", 205, 1, T.UINT16),
    Point("Sig", 206, 48, T.BLOB),
))

OCMF_MODEL = Layout(64903, "OCMF", (
    Point("Typ", 2, 1, T.ENUM16), Point("St", 3, 1, T.ENUM16), Point("O", 4, 496, T.STRING),
))

LAYOUTS = {layout.model_id: layout for layout in (COMMON, AC_METER, SIGNING_METER, FIRMWARE_HASH, SNAPSHOT, OCMF_MODEL)}


class SnapshotType(enum.IntEnum):
    """ch. 17.5; the snapshot and OCMF instances come in this order in the chain."""

    CURRENT = 0
    TURN_ON = 1
    TURN_OFF = 2
    START = 3
    END = 4

    @property
    def option(self) -> str:
        return self.name.lower().replace("_", "-")


class SnapshotStatus(enum.IntEnum):
    """ch. 17.5; writing UPDATING asks for a new snapshot."""

    VALID = 0
    INVALID = 1
    UPDATING = 2
    FAILED = 3
    FAILED_NO_DOE = 4
    """No charge release via DOE (turn-on)."""
    FAILED_FEEDBACK = 5
    """Wrong contactor feedback on DI (turn-on and turn-off)."""


class SignatureError(ProtocolError):
    """A public key or signature that is not a secp256r1 key or a DER ECDSA signature."""


# -- the hash representation (appendix D) ---------------------------------------------------------


class HashKind(enum.Enum):
    SUI32 = "SUI32"
    SI32 = "SI32"
    STRING = "String"


UNIT_CODES = {None: 255, "min": 6, "s": 7, "W": 27, "Wh": 30}
"""COSEM unit codes of the units the snapshot carries (ch. 17.2)."""


@dataclass(frozen=True, slots=True)
class HashField:
    """One entry of appendix D's table: a register ID, how it is represented, its unit and the point
    holding its scale factor (none: 0)."""

    id: str
    kind: HashKind
    unit: str | None = None
    scale: str | None = None


_U, _S, _STR = HashKind.SUI32, HashKind.SI32, HashKind.STRING

CURRENT_FIELDS = (
    HashField("Typ", _U), HashField("RCR", _U, "Wh", "Wh_SF"), HashField("TotWhExp", _U, "Wh", "Wh_SF"),
    HashField("W", _S, "W", "W_SF"), HashField("MA1", _STR), HashField("RCnt", _U), HashField("OS", _U, "s"),
    HashField("Epoch", _U, "s"), HashField("TZO", _S, "min"), HashField("EpochSetCnt", _U), HashField("EpochSetOS", _U, "s"),
    HashField("DI", _U), HashField("DO", _U), HashField("Meta1", _STR), HashField("Meta2", _STR), HashField("Meta3", _STR),
    HashField("Evt", _U),
)
"""What current meters sign: the snapshot model's points in register order (17 fields)."""

LEGACY_FIELDS = (
    HashField("Typ", _U), HashField("TotWhImp", _U, "Wh", "Wh_SF"), HashField("W", _S, "W", "W_SF"), HashField("MA1", _STR),
    HashField("RCnt", _U), HashField("OS", _U, "s"), HashField("Epoch", _U, "s"), HashField("TZO", _S, "min"),
    HashField("EpochSetCnt", _U), HashField("EpochSetOS", _U, "s"), HashField("DI", _U), HashField("DO", _U),
    HashField("DIChgOS", _U, "s"), HashField("DIChgEpoch", _U, "s"), HashField("DIChgTZO", _S, "min"),
    HashField("DOChgOS", _U, "s"), HashField("DOChgEpoch", _U, "s"), HashField("DOChgTZO", _S, "min"),
    HashField("Meta1", _STR), HashField("Meta2", _STR), HashField("Meta3", _STR), HashField("Evt", _U),
)
"""Appendix D's table, of an older firmware (22 fields, no RCR, digital I/O change times)."""


def represent(field: HashField, value: int | str, scale: int = 0) -> bytes:
    """One field's bytes in the hash input."""
    try:
        if field.kind is HashKind.STRING:
            if not isinstance(value, str):
                raise SunSpecError(f"{field.id}: a string field needs a string")
            data = value.encode("utf-8", "surrogateescape")
            return struct.pack(">L", len(data)) + data
        if not isinstance(value, int) or isinstance(value, bool) or not isinstance(scale, int):
            raise SunSpecError(f"{field.id}: a number field needs an integer value and scale")
        return struct.pack(">lbB" if field.kind is HashKind.SI32 else ">LbB", value, scale, UNIT_CODES[field.unit])
    except struct.error:
        raise SunSpecError(f"{field.id}: {value} (scale {scale}) does not fit {field.kind.value}") from None


def hash_input(values: Mapping[str, int | str], fields: tuple[HashField, ...] = CURRENT_FIELDS) -> bytes:
    """The bytes whose SHA-256 the meter signs, from the raw register values by register ID."""
    parts = []
    for field in fields:
        if field.id not in values:
            raise SunSpecError(f"snapshot lacks {field.id}")
        scale = values.get(field.scale, None) if field.scale else 0
        if scale is None:
            raise SunSpecError(f"snapshot lacks {field.scale}, the scale of {field.id}")
        parts.append(represent(field, values[field.id], scale))
    return b"".join(parts)


def load_public_key(der: bytes) -> ec.EllipticCurvePublicKey:
    """A DER SubjectPublicKeyInfo (RFC 5480) of a secp256r1 key."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as error:
        raise SignatureError(f"public key: not a DER public key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureError("public key: not a secp256r1 (prime256v1) key")
    return key


def verify_digest(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Whether the DER ECDSA `signature` signs the SHA-256 `digest` under `public_key` (DER)."""
    key = load_public_key(public_key)
    try:
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    except ValueError:
        return False  # not DER: no valid signature either
    return True


# -- snapshots ------------------------------------------------------------------------------------

SNAPSHOT_IDS = ("Typ", "St", "RCR", "TotWhExp", "Wh_SF", "W", "W_SF", "MA1", "RCnt", "OS", "Epoch", "TZO",
                "EpochSetCnt", "EpochSetOS", "DI", "DO", "Meta1", "Meta2", "Meta3", "Evt")
"""The snapshot's points in register order, as the JSON names them."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot as read: raw register values by register ID, the DER signature, and the meter's
    public key when it was read from the meter (a saved file may carry it)."""

    values: Mapping[str, int | str]
    signature: bytes
    public_key: bytes | None = None

    @property
    def type(self) -> int:
        return int(self.values["Typ"])

    @property
    def status(self) -> int:
        return int(self.values.get("St", SnapshotStatus.VALID))

    def digest(self, fields: tuple[HashField, ...] = CURRENT_FIELDS) -> bytes:
        return hashlib.sha256(hash_input(self.values, fields)).digest()

    def verify(self, public_key: bytes | None = None, fields: tuple[HashField, ...] = CURRENT_FIELDS) -> bool:
        """Whether the signature holds under `public_key` (default: the one read with it)."""
        key = public_key if public_key is not None else self.public_key
        if key is None:
            raise SignatureError("no public key to verify the snapshot with")
        if not self.signature:
            return False
        return verify_digest(key, self.digest(fields), self.signature)

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {name: self.values[name] for name in SNAPSHOT_IDS if name in self.values}
        record["Sig"] = self.signature.hex()
        if self.public_key is not None:
            record["PK"] = self.public_key.hex()
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, object]) -> Snapshot:
        """A saved snapshot; the maker's tool's name TotWhImp is taken for TotWhExp."""
        if not isinstance(record, Mapping):
            raise SunSpecError("a snapshot is a JSON object")
        values: dict[str, int | str] = {}
        for name, value in record.items():
            key = "TotWhExp" if name == "TotWhImp" else name
            if key not in SNAPSHOT_IDS:
                continue
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                raise SunSpecError(f"{name}: an integer or a string, as read from the register")
            values[key] = value
        return cls(values, _hex(record.get("Sig"), "Sig") or b"", _hex(record.get("PK"), "PK"))


def _hex(text: object, name: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise SunSpecError(f"{name}: hex text")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SunSpecError(f"{name}: not hex") from None


def decode_snapshot(instance: ModelInstance, registers: list[int] | tuple[int, ...], public_key: bytes | None = None) -> Snapshot:
    """A snapshot model instance (ID register first) read whole."""
    points = decode_model(SNAPSHOT, instance, registers)
    signature = blob(_bytes(points["Sig"]), _int(points["BSig"]), "Sig")
    values = {name: points[name] for name in SNAPSHOT_IDS}
    return Snapshot({name: value for name, value in values.items() if isinstance(value, (int, str))}, signature, public_key)


def decode_public_key(registers: list[int] | tuple[int, ...]) -> bytes:
    """The public key (DER) from the Signing Meter's registers NPK, BPK and the PK area (appendix D)."""
    if len(registers) < 2 or registers[0] != len(registers) - 2:
        raise SunSpecError(f"public key: NPK says {registers[0] if registers else None} registers, "
                           f"{len(registers) - 2} read after NPK and BPK")
    area = struct.pack(f">{len(registers) - 2}H", *registers[2:])
    return blob(area, registers[1], "PK")


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes)
    return value


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value
