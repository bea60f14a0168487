"""`meterlink ...`: the command-line contract of ARCHITECTURE.md.

Decoding and reading commands print one JSON object per line on stdout, a line on stderr for each
telegram that fails, and exit 0 when everything asked for was done, 1 when something failed, 2 for
usage errors (unknown option, unreadable file, a port that cannot be opened).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from functools import partial
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import trio

from .protocols.dlms.security import CipherKeys
from .protocols.readings import Reading
from .service.version import software_version
from .transports import SerialSettings, TransportError

if TYPE_CHECKING:
    from .machines.base import LinkMachine
    from .machines.dlms import Association
    from .service.config import Config
    from .service.read import ReadUntil
    from .protocols.dlms.objects import AttributeRef

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
"""Ctrl-C during an image transfer: the meter keeps the partial image for --resume."""
DEFAULT_MAX_FAILURES = 3
"""A push `read` gives up after this many telegrams in a row that fail (ARCHITECTURE.md)."""
HDLC_PUSH_INTERVAL = 10.0
"""actors.hdlc_push's, named here so that building the parser imports no link."""
LAYOUTS = ("pairs", "aidon", "kamstrup", "kaifa")
"""simulators.hdlc_push.Layout's values, for the same reason."""
DETECT_LISTEN_TIME = 12.0
"""machines.detect's DEFAULT_LISTEN_TIME, for the same reason."""


NO_KEY_GIVEN = "the telegram is encrypted: give the meter's key with --key (and --auth-key where the grid operator issued one)"
"""The no_key detail of a command: its keys come from the command line, not the key store."""


class UsageError(Exception):
    """Bad arguments, or a file or port that cannot be used: exit 2."""


def print_reading(reading: Reading) -> None:
    print(json.dumps(reading.to_json(), ensure_ascii=False), flush=True)


def warn(message: str) -> None:
    print(f"meterlink: {message}", file=sys.stderr, flush=True)


def read_input(path: str) -> bytes:
    """The bytes of FILE, or of stdin for '-'."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


# -- decode -------------------------------------------------------------------------------------


def decode_p1(args: argparse.Namespace) -> int:
    """Plain telegrams as text, or encrypted ones (Luxembourg Smarty, Energienetze Steiermark) as
    hex text or binary, opened with --key/--auth-key under the P1 link's rules."""
    from .protocols.dlms.push import Outcome
    from .protocols.p1 import CrcStatus, EncryptedTelegram, P1Framer, TelegramFramed, check_telegram
    from .protocols.p1_encrypted import decrypt_telegram

    keys = optional_keys(args)
    last_frame_counter = None
    failed = decoded = 0
    for event in P1Framer().feed(hex_or_binary(read_input(args.file))):
        if isinstance(event, EncryptedTelegram):
            result = decrypt_telegram(event.apdu, keys, last_frame_counter, NO_KEY_GIVEN)
            if result.outcome is not Outcome.DECODED or result.plaintext is None:
                failed += 1
                warn(f"telegram {decoded + failed}: {result.outcome.value}: {result.detail}")
                continue
            last_frame_counter = result.frame_counter
            event = check_telegram(result.plaintext)
        if not isinstance(event, TelegramFramed):
            continue
        accepted = event.crc is CrcStatus.OK or (event.crc is CrcStatus.ABSENT and args.legacy)
        if accepted and event.telegram is not None:
            print_reading(event.telegram.to_reading(None))
            decoded += 1
            for line in event.telegram.skipped:  # the rest was read: named, and not a failure
                warn(f"telegram {decoded + failed}: {line}")
            continue
        failed += 1
        if event.error is not None:
            warn(f"telegram {decoded + failed}: {event.error}")
        elif event.crc is CrcStatus.ABSENT:
            warn(f"telegram {decoded + failed}: no CRC (use --legacy for DSMR 2.2/3 telegrams)")
        else:
            warn(f"telegram {decoded + failed}: CRC-16 does not match")
    if decoded + failed == 0:
        warn("no complete P1 telegram ('/' ... '!' CRC line, or encrypted: DB 08 ...) in the input")
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


# -- read ---------------------------------------------------------------------------------------


def serial_settings(args: argparse.Namespace, default: SerialSettings) -> SerialSettings:
    try:
        return SerialSettings(
            baudrate=args.baud or default.baudrate,
            bytesize=args.bytesize or default.bytesize,
            parity=(args.parity or default.parity).upper(),
            stopbits=args.stopbits or default.stopbits,
            data_request=args.data_request,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def read_until(args: argparse.Namespace) -> ReadUntil:
    from .service.read import ReadUntil

    return ReadUntil(args.count, args.max_failures)


def read_p1(args: argparse.Namespace) -> int:
    from .actors.p1 import DSMR22_SERIAL, P1_SERIAL, P1Link, run_p1
    from .service.read import read_one_link

    keys = optional_keys(args)
    default = DSMR22_SERIAL if args.legacy else P1_SERIAL
    link = P1Link(args.port, serial_settings(args, default), args.push_interval, legacy=args.legacy)
    run = partial(run_p1, link, keys=lambda: keys)
    return trio.run(read_one_link, "p1", link.opener(), run, read_until(args), print_reading, warn)


def cipher_keys(args: argparse.Namespace) -> CipherKeys:
    """--key and --auth-key as given on the command line; errors never repeat the key."""
    return CipherKeys(_key_bytes(args.key, "--key"), _key_bytes(args.auth_key, "--auth-key") if args.auth_key else None)


def optional_keys(args: argparse.Namespace) -> list[CipherKeys]:
    """--key and --auth-key where a meter may push in clear: none without --key."""
    if args.key is None:
        if args.auth_key:
            raise UsageError("--auth-key goes with --key: the authentication key is the second of the meter's two keys")
        return []
    return [cipher_keys(args)]


def _key_bytes(text: str, option: str) -> bytes:
    digits = "".join(text.split()).replace(":", "")
    if len(digits) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise UsageError(f"{option}: a meter key is 32 hex digits (16 bytes)")
    return bytes.fromhex(digits)


def read_mbus(args: argparse.Namespace) -> int:
    from .actors.mbus import MBusLink, default_serial, run_mbus
    from .service.read import read_one_link

    keys = [cipher_keys(args)]
    link = MBusLink(args.port, serial_settings(args, default_serial(args.payload)), args.push_interval, args.payload)
    run = partial(run_mbus, link, lambda: keys)
    return trio.run(read_one_link, "mbus", link.opener(), run, read_until(args), print_reading, warn)


@dataclass
class Tally:
    """What a `decode` printed: a reading per telegram decoded, a line on stderr per one that failed."""

    decoded: int = 0
    failed: int = 0

    def drive(self, machine: LinkMachine, events: Iterable[object]) -> None:
        """Hand each framer event to the link's machine, as its actor would, and report what it did."""
        from .machines.base import Dropped, Publish

        for event in events:
            machine.handle(event, None)
            for action in machine.take_actions():
                if isinstance(action, Publish):
                    print_reading(action.reading)
                    self.decoded += 1
                elif isinstance(action, Dropped):
                    self.fail(f"telegram {self.decoded + self.failed + 1}: {action.cause}: {action.detail}")

    def fail(self, why: str) -> None:
        self.failed += 1
        warn(why)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed or not self.decoded else EXIT_OK


def decode_mbus(args: argparse.Namespace) -> int:
    from .machines.mbus import MBusAdapter
    from .protocols.mbus import MBusFramer

    keys = [cipher_keys(args)]
    machine = MBusAdapter(keys=lambda: keys, payload=args.payload)
    framer = MBusFramer()
    tally = Tally()
    tally.drive(machine, framer.feed(hex_or_binary(read_input(args.file))))
    if framer.pending or machine.joining.is_active:
        tally.fail("the input ends inside a telegram")
    if tally.decoded + tally.failed == 0:
        warn("no complete M-Bus telegram in the input")
    return tally.exit_code


def meter_ids(args: argparse.Namespace) -> tuple[str, ...]:
    """--id as given: a wireless meter's identification number, eight hex digits (BCD, as printed on it)."""
    ids = tuple(text.strip().upper() for text in args.id or ())
    for meter_id in ids:
        if len(meter_id) != 8 or any(c not in "0123456789ABCDEF" for c in meter_id):
            raise UsageError(f"--id {meter_id!r}: a meter's identification number is 8 digits, e.g. 30071234")
    return ids


def wmbus_key(args: argparse.Namespace) -> list[CipherKeys]:
    """--key for every meter heard (with --id: the meters named)."""
    return [CipherKeys(_key_bytes(args.key, "--key"))] if args.key else []


def read_wmbus(args: argparse.Namespace) -> int:
    from .actors.wmbus import RECEIVER_SERIAL, WMBusLink, run_wmbus
    from .protocols.wmbus_receivers import Receiver
    from .service.read import read_one_link

    receiver = Receiver(args.receiver)
    if receiver is Receiver.RTL_WMBUS:
        if not args.command or args.port:
            raise UsageError("--receiver rtl_wmbus reads a command's output: give --command \"CMD\" (and no --port)")
        serial = None
    else:
        if not args.port or args.command:
            raise UsageError(f"--receiver {receiver.value} is a serial stick: give --port (and no --command)")
        serial = serial_settings(args, RECEIVER_SERIAL[receiver])
    keys = wmbus_key(args)
    link = WMBusLink(receiver, args.port, args.command, serial, meter_ids(args), args.push_interval)
    run = partial(run_wmbus, link, lambda meter_id: keys)
    return trio.run(read_one_link, "wmbus", link.opener(), run, read_until(args), print_reading, warn)


def decode_wmbus(args: argparse.Namespace) -> int:
    """One telegram per line as hex (format A or B, with or without the block CRCs), or rtl_wmbus lines."""
    from .machines.wmbus import WMBusReceiver
    from .protocols.wmbus_receivers import RadioFrame, RtlWmbusFramer

    keys = wmbus_key(args)
    machine = WMBusReceiver(keys=lambda meter_id: keys, meter_ids=meter_ids(args))
    tally = Tally()
    for number, raw in enumerate(read_input(args.file).decode("latin-1").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ";0x" in line:
            events = RtlWmbusFramer().feed(line.encode("latin-1") + b"\n")
        else:
            digits = "".join(line.split()).removeprefix("0x")
            if len(digits) % 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                tally.fail(f"line {number}: not a telegram in hex")
                continue
            events = [RadioFrame(bytes.fromhex(digits))]
        tally.drive(machine, events)
    if tally.decoded + tally.failed == 0:
        warn("no wireless M-Bus telegram in the input")
    return tally.exit_code


def read_hdlc_push(args: argparse.Namespace) -> int:
    from .actors.hdlc_push import HDLC_PUSH_SERIAL, HdlcPushLink, run_hdlc_push
    from .service.read import read_one_link

    keys = optional_keys(args)
    link = HdlcPushLink(args.port, serial_settings(args, HDLC_PUSH_SERIAL), args.push_interval)
    run = partial(run_hdlc_push, link, lambda: keys)
    return trio.run(read_one_link, "hdlc-push", link.opener(), run, read_until(args), print_reading, warn)


def read_dlms(args: argparse.Namespace) -> int:
    from .actors.dlms import DLMS_SERIAL, DlmsLink, run_dlms
    from .service.read import read_session

    link = DlmsLink(args.port, dlms_association(args), dlms_reads(args), serial=serial_settings(args, DLMS_SERIAL))
    return trio.run(read_session, "dlms", link.opener(), partial(run_dlms, link), len(link.reads), print_reading, warn)


def read_bsm(args: argparse.Namespace) -> int:
    from .actors.bsm import BSM_SERIAL, BsmLink, run_bsm
    from .machines.bsm import BsmPlan
    from .service.read import ReadUntil, read_one_link

    link = BsmLink(args.port, BsmPlan(unit=args.unit, poll_interval=args.interval), serial_settings(args, BSM_SERIAL))
    return trio.run(read_one_link, "bsm", link.opener(), partial(run_bsm, link), ReadUntil(args.count, 0), print_reading, warn)


def mep_key_arg(args: argparse.Namespace) -> bytes:
    """--key (32 hex digits, or 40 for a 20-byte key) or --key-ascii (16 to 20 characters): the first
    16 bytes, which the MEP digest uses. Errors never repeat the key."""
    if args.key_ascii is not None:
        secret = args.key_ascii.encode("ascii", "replace")
        if not 16 <= len(secret) <= 20 or not args.key_ascii.isascii():
            raise UsageError("--key-ascii: a MEP key is 16 to 20 ASCII characters")
        return secret[:16]
    digits = "".join(args.key.split()).replace(":", "")
    if len(digits) not in (32, 40) or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise UsageError("--key: a MEP key is 32 hex digits (16 bytes), or 40 of which the first 32 are used")
    return bytes.fromhex(digits)[:16]


def read_mep(args: argparse.Namespace) -> int:
    from .actors.mep import MEP_SERIAL, MepLink, run_mep
    from .machines.mep import MIN_POLL_INTERVAL
    from .service.read import ReadUntil, read_one_link

    keys = [CipherKeys(mep_key_arg(args))]
    if args.interval < MIN_POLL_INTERVAL:
        raise UsageError(f"--interval: at least {MIN_POLL_INTERVAL:g} s (about one table read a second, as the MEP guide advises)")
    link = MepLink(args.port, args.interval, args.energy_unit, patient=False, serial=serial_settings(args, MEP_SERIAL))
    run = partial(run_mep, link, lambda: keys)
    return trio.run(read_one_link, "mep", link.opener(), run, ReadUntil(args.count, 1), print_reading, warn)


def decode_mep(args: argparse.Namespace) -> int:
    """Request/response pairs in order, hex, one message a line; a reading per poll (BT23 .. BT52)."""
    from .protocols.errors import ProtocolError
    from .protocols.mep_capture import CaptureReplay, capture_lines

    key = mep_key_arg(args)
    try:
        messages = capture_lines(read_input(args.file).decode("ascii", "replace"))
    except ProtocolError as error:
        raise UsageError(f"{args.file}: {error}") from None
    replay = CaptureReplay(key, args.energy_unit)
    for number, start in enumerate(range(0, len(messages), 2), start=1):
        replay.pair(number, messages[start], messages[start + 1] if start + 1 < len(messages) else None)
    replay.finish()
    for reading in replay.readings:
        print_reading(reading)
    for line in replay.notes + replay.problems:
        warn(line)
    if not replay.readings:
        warn("no poll in the capture made a reading (it needs BT21, BT22 and a BT23 read)")
    return EXIT_FAILED if replay.problems or not replay.readings else EXIT_OK


def bsm_snapshot(args: argparse.Namespace) -> int:
    """Take one signed snapshot and print it as JSON; exit 1 unless it is valid and verifies."""
    from .actors.bsm import BSM_SERIAL, BsmLink, run_bsm
    from .actors.link import LinkHooks, LinkLost, LinkStatus
    from .machines.bsm import BsmClient, BsmPlan, SnapshotRequest
    from .protocols.bsm import SnapshotType
    from .protocols.errors import ProtocolError

    kind = next(kind for kind in SnapshotType if kind.option == args.type)
    try:
        request = SnapshotRequest(kind, args.meta1, args.meta2, args.meta3)
    except ProtocolError as error:
        raise UsageError(f"metadata: {error}") from None
    plan = BsmPlan(unit=args.unit, snapshot=request)
    link = BsmLink(args.port, plan, serial_settings(args, BSM_SERIAL))
    machine = BsmClient(plan)

    async def session() -> None:
        stream = await link.opener()()  # a port that cannot be opened is a usage error

        async def opener() -> trio.abc.Stream:
            return stream

        try:
            await run_bsm(link, LinkHooks(lambda reading: None), LinkStatus("bsm", "bsm"), opener, machine)
        except LinkLost as error:
            warn(str(error))

    trio.run(session)
    outcome = machine.outcome
    if outcome is None:
        warn(f"no snapshot: {machine.failure or 'the session ended early'}")
        return EXIT_FAILED
    record: dict[str, object] = outcome.snapshot.to_json() if outcome.snapshot else {"Typ": int(kind), "St": outcome.status}
    if outcome.snapshot is None and machine.public_key is not None:
        record["PK"] = machine.public_key.hex()
    record["signature_valid"] = outcome.valid
    if outcome.ocmf is not None:
        record["OCMF"] = outcome.ocmf
        record["ocmf_signature_valid"] = bool(outcome.ocmf_valid)
    print(json.dumps(record), flush=True)
    if not outcome.valid:
        warn(f"{args.type} snapshot not valid: {outcome.reason or machine.failure}")
    return EXIT_OK if outcome.valid else EXIT_FAILED


def bsm_verify(args: argparse.Namespace) -> int:
    """Verify a saved snapshot (JSON) or an OCMF string; exit 1 when it does not verify."""
    from .protocols.bsm import Snapshot
    from .protocols.errors import ProtocolError
    from .protocols.ocmf import parse_ocmf

    text = read_input(args.file).decode("utf-8", "surrogateescape").strip()
    try:
        key = bytes.fromhex(args.public_key) if args.public_key else None
    except ValueError:
        raise UsageError("--public-key: hex digits of the DER public key") from None
    try:
        if text.startswith("OCMF|"):
            if key is None:
                raise UsageError("an OCMF string carries no public key: give --public-key")
            valid = parse_ocmf(text).verify(key)
        else:
            try:
                record = json.loads(text)
            except ValueError as error:
                raise UsageError(f"{args.file}: neither an OCMF string nor a snapshot's JSON ({error})") from None
            snapshot = Snapshot.from_json(record)
            if key is None and snapshot.public_key is None:
                raise UsageError("the snapshot carries no PK: give --public-key")
            valid = snapshot.verify(key)
    except ProtocolError as error:
        warn(f"{args.file}: {error}")
        return EXIT_FAILED
    print(json.dumps({"signature_valid": valid}), flush=True)
    return EXIT_OK if valid else EXIT_FAILED


def dlms_association(args: argparse.Namespace) -> Association:
    """--password, --client-sap, --server-logical, --server-physical and --framing; errors never repeat the password."""
    from .machines.dlms import Association, Framing
    from .protocols.hdlc import Address

    try:
        association = Association(
            password=args.password.encode("utf-8") if args.password is not None else None,
            client_sap=args.client_sap, server_logical=args.server_logical, server_physical=args.server_physical,
            framing=Framing(args.framing),
        )
        Address.client(association.client)
        Address.server(association.server, association.server_physical)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return association


def dlms_reads(args: argparse.Namespace) -> tuple[AttributeRef, ...]:
    """The --get attributes; with --from and --to, profile buffers are read by that range of their clock."""
    from dataclasses import replace
    from datetime import datetime

    from .protocols.dlms.objects import PROFILE_GENERIC, AttributeRef, ObjectError, range_access
    from .protocols.dlms.xdlms import AttributeDescriptor
    from .protocols.obis import Obis, ObisError

    try:
        reads = tuple(AttributeRef.parse(text) for text in args.get)
        clock = AttributeDescriptor(8, Obis.parse(args.clock_obis), 2)
    except (ObjectError, ObisError) as error:
        raise UsageError(str(error)) from None
    if args.date_from is None and args.date_to is None:
        return reads
    if args.date_from is None or args.date_to is None:
        raise UsageError("--from and --to go together: the range of a profile's rows")
    try:
        bounds = [datetime.fromisoformat(text) for text in (args.date_from, args.date_to)]
    except ValueError as error:
        raise UsageError(f"--from/--to: {error} (ISO 8601, e.g. 2013-10-25 or 2013-10-25T06:00)") from None
    if any(bound.tzinfo is not None for bound in bounds):
        raise UsageError("--from/--to: give the meter's local time, without a UTC offset")
    profiles = [ref.class_id == PROFILE_GENERIC and ref.attribute == 2 for ref in reads]
    if not any(profiles):
        raise UsageError("--from/--to select the rows of a profile buffer: --get CLASS 7, attribute 2")
    access = range_access(clock, bounds[0], bounds[1])
    return tuple(replace(ref, access=access) if profile else ref for ref, profile in zip(reads, profiles))


def image_transfer(args: argparse.Namespace) -> int:
    """`meterlink image-transfer`: progress on stderr, the verdict as one JSON object on stdout;
    0 when the new image is active and its revision confirmed, 1 when not, 130 on Ctrl-C."""
    from .actors.dlms import DLMS_SERIAL
    from .machines.image_transfer import Image, Outcome
    from .protocols.dlms.objects import DATA, AttributeRef
    from .protocols.obis import Obis, ObisError
    from .service.image_transfer import load_record, make_transfer, record_path, run_transfer

    path = Path(args.image)
    data = read_input(args.image)
    if not data:
        raise UsageError(f"{args.image}: the image is empty")
    identifier = (args.identifier if args.identifier is not None else path.stem).encode("utf-8")
    if not identifier:
        raise UsageError("--identifier: the image identifier cannot be empty")
    try:
        revision = AttributeRef(DATA, Obis.parse(args.revision_obis), 2)
    except ObisError as error:
        raise UsageError(f"--revision-obis: {error}") from None
    record_file = record_path(path)
    try:
        record = load_record(record_file) if args.resume else None
    except (OSError, ValueError) as error:
        raise UsageError(f"--resume: {error}") from None
    association = dlms_association(args)
    transfer = make_transfer(Image(identifier, data), args.port, association, record, revision, args.expect_revision,
                             args.signature_hash)
    show = _ImageProgress(sys.stderr.isatty())
    try:
        trio.run(partial(run_transfer, transfer, args.port, serial_settings(args, DLMS_SERIAL), association, show.update,
                         record_file))
    except KeyboardInterrupt:
        pass
    finally:
        show.close()
    verdict = transfer.verdict()
    if transfer.machine.outcome is None:
        verdict["result"] = Outcome.INTERRUPTED.value
    print(json.dumps(verdict, ensure_ascii=False), flush=True)
    outcome = transfer.machine.outcome
    if outcome is Outcome.ACTIVE:
        return EXIT_OK
    if outcome is Outcome.INTERRUPTED or outcome is None:
        return EXIT_INTERRUPTED
    warn(f"image transfer failed: {transfer.machine.reason}")
    return EXIT_FAILED


class _ImageProgress:
    """A bar on a terminal (blocks, bytes, rate, ETA), else a line whenever the step changes or
    another tenth of the blocks went out."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.bar = None
        self.task = None
        self.last: tuple[str, int] | None = None

    def update(self, now) -> None:  # type: ignore[no-untyped-def]
        if self.tty:
            self._bar(now)
            return
        tenth = now.confirmed * 10 // now.blocks if now.blocks else 0
        if (now.state, tenth) != self.last:
            self.last = (now.state, tenth)
            print(f"meterlink: {now.state}: {now.confirmed}/{now.blocks} blocks, {now.bytes_sent} bytes sent"
                  + (f", {now.resent} resent" if now.resent else ""), file=sys.stderr, flush=True)

    def _bar(self, now) -> None:  # type: ignore[no-untyped-def]
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[blocks]}"),
                                DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(now.state, total=now.image_size or None, blocks="")
        done = min(now.image_size, now.confirmed * (now.image_size // now.blocks if now.blocks else 0)) if now.confirmed < now.blocks else now.image_size
        self.bar.update(self.task, description=now.state, completed=done if now.blocks else 0,
                        blocks=f"{now.confirmed}/{now.blocks} blocks")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def decode_hdlc(args: argparse.Namespace) -> int:
    """The readings of the data-notifications a meter pushed in the frames, read by the machine the
    HDLC push link runs; `--annotate` describes the frames instead."""
    from .machines.hdlc_push import HdlcPushReader
    from .protocols.dlms.describe import read_capture
    from .protocols.hdlc import Frame, HdlcFramer

    if args.annotate:
        if args.key is not None or args.auth_key is not None:
            raise UsageError("--annotate shows the frames as sent and decrypts nothing: leave out --key and --auth-key")
        return annotate_hdlc(read_capture(read_input(args.file)))
    keys = optional_keys(args)
    machine = HdlcPushReader(keys=lambda: keys)
    framer = HdlcFramer()
    events = framer.feed(read_capture(read_input(args.file)))
    tally = Tally()
    tally.drive(machine, events)
    if framer.pending:
        tally.fail("the input ends inside a frame")
    elif machine.holds_partial:
        tally.fail("the input ends inside a notification")
    if tally.decoded + tally.failed == 0:
        frames = sum(isinstance(event, Frame) for event in events)
        warn(f"no data-notification in {frames} frames (--annotate shows them)" if frames
             else "no HDLC frame (7E A0.. .. 7E) in the input")
    return tally.exit_code


def annotate_hdlc(capture: bytes) -> int:
    """Annotate every HDLC frame and the APDU in it: one JSON object per frame, a line on stderr for
    each frame that does not check or decode."""
    from .protocols.dlms.describe import describe_capture

    entries = describe_capture(capture)
    frames = failed = 0
    for entry in entries:
        print(json.dumps(entry, ensure_ascii=False), flush=True)
        if "noise" not in entry:
            frames += 1
        if "error" in entry:
            failed += 1
            warn(f"frame {entry['frame']} at byte {entry['offset']}: {entry['error']}")
    if frames == 0:
        warn("no HDLC frame (7E A0.. .. 7E) in the input")
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def hex_or_binary(data: bytes) -> bytes:
    """Hex text (whitespace and line breaks allowed) becomes bytes; anything else is taken as binary."""
    text = b"".join(data.split())
    if text and all(c in b"0123456789abcdefABCDEF" for c in text) and len(text) % 2 == 0:
        return bytes.fromhex(text.decode("ascii"))
    return data


# -- detect -------------------------------------------------------------------------------------


def detect(args: argparse.Namespace) -> int:
    """One JSON object on stdout, a summary on stderr; exit 0 when a meter was found, else 1."""
    from .actors.link import LinkStatus
    from .service.detect import Found, detect as detect_meter, notes, report, setting_text, summary

    keys = optional_keys(args)
    if not args.listen_time > 0:
        raise UsageError(f"--listen-time: seconds to listen at each serial setting, more than 0, not {args.listen_time:g}")

    def listening(serial: SerialSettings | None) -> None:
        warn(f"listening at {setting_text(serial)} for {args.listen_time:g} s")

    result = trio.run(partial(detect_meter, args.port, keys, args.listen_time, LinkStatus("detect", "auto"),
                              on_setting=listening))
    print(json.dumps(report(result), ensure_ascii=False), flush=True)
    for line in (summary(result), *notes(result)):
        warn(line)
    return EXIT_OK if isinstance(result, Found) else EXIT_FAILED


# -- simulate -----------------------------------------------------------------------------------


def simulate_p1(args: argparse.Namespace) -> int:
    from .simulators.p1 import P1Cipher, P1MeterModel, push_telegrams
    from .simulators.serve import serve_meter

    keys = next(iter(optional_keys(args)), None)
    cipher = P1Cipher(keys.encryption, keys.authentication) if keys is not None else None

    async def meter(stream: trio.abc.Stream) -> None:
        await push_telegrams(stream, P1MeterModel(), args.interval, cipher=cipher)

    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


def simulate_kaifa(args: argparse.Namespace) -> int:
    from .simulators.kaifa import DEMO_KEY, KaifaMeterModel, push_one_way, run_kaifa_meter
    from .simulators.serve import serve_meter

    keys = cipher_keys(args) if args.key else CipherKeys(DEMO_KEY, None)
    if args.auth_key and not args.key:
        keys = CipherKeys(DEMO_KEY, _key_bytes(args.auth_key, "--auth-key"))

    async def meter(stream: trio.abc.Stream) -> None:
        model = KaifaMeterModel(key=keys.encryption, auth_key=keys.authentication)
        if args.one_way:
            await push_one_way(stream, model, args.interval)
        else:
            await run_kaifa_meter(stream, model, args.interval)

    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


def simulate_wmbus(args: argparse.Namespace) -> int:
    from .protocols.wmbus_receivers import Receiver
    from .simulators.serve import serve_meter
    from .simulators.wmbus import NES_DEMO_KEY, NES_ID, NesMeterModel, run_stick

    receiver = Receiver(args.receiver)
    key = _key_bytes(args.key, "--key") if args.key else NES_DEMO_KEY
    (meter_id,) = meter_ids(argparse.Namespace(id=[args.id or NES_ID]))

    async def meter(stream: trio.abc.Stream) -> None:
        await run_stick(stream, receiver, NesMeterModel(meter_id=meter_id, key=key), args.interval)

    if args.listen is None:
        if receiver is not Receiver.RTL_WMBUS:
            raise UsageError(f"--receiver {receiver.value}: give --listen tcp://HOST:PORT or --pty (only rtl_wmbus writes "
                             f"to standard output)")
        trio.run(_lines_to_stdout, meter)
        return EXIT_OK
    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


async def _lines_to_stdout(meter: Callable[[trio.abc.Stream], Awaitable[None]]) -> None:
    """rtl_wmbus as a command: its lines on standard output, as `read wmbus --command` reads them."""
    from .transports import memory_link_pair

    ours, theirs = memory_link_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meter, theirs)
        while data := await ours.receive_some():
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                nursery.cancel_scope.cancel()
                return


def simulate_amis(args: argparse.Namespace) -> int:
    from .simulators.amis import AMIS_DEMO_KEY, AmisMeterModel, run_amis_meter
    from .simulators.serve import serve_meter

    key = _key_bytes(args.key, "--key") if args.key else AMIS_DEMO_KEY

    async def meter(stream: trio.abc.Stream) -> None:
        await run_amis_meter(stream, AmisMeterModel(key=key), args.interval)

    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


def simulate_hdlc_push(args: argparse.Namespace) -> int:
    from .simulators.hdlc_push import HdlcPushMeterModel, Layout, push_notifications
    from .simulators.serve import serve_meter

    keys = next(iter(optional_keys(args)), None)

    async def meter(stream: trio.abc.Stream) -> None:
        model = HdlcPushMeterModel(Layout(args.layout), keys and keys.encryption, keys and keys.authentication,
                                   segmented=args.segmented, blocks=args.blocks)
        await push_notifications(stream, model, args.interval)

    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


def simulate_kamstrup(args: argparse.Namespace) -> int:
    from .machines.dlms import Framing
    from .simulators.image_transfer import Faults, ImageTransferServer
    from .simulators.kamstrup import DEFAULT_PASSWORD, OMNIPOWER_MAX_RECEIVE_PDU, KamstrupMeterModel, run_kamstrup_meter
    from .simulators.serve import serve_meter

    password = args.password.encode("utf-8") if args.password is not None else DEFAULT_PASSWORD
    framing = Framing(args.framing)
    faults = Faults(drop_blocks=frozenset(args.drop_blocks), busy_blocks=frozenset(args.busy_blocks),
                    verify_fails=args.verify_fails, activation_refusals=args.activation_refusals,
                    activation_broken=args.activation_broken, reboot_seconds=args.reboot_seconds,
                    drop_link_after=args.drop_link_after)
    # One meter for every connection: an image sent over one must be there for the next.
    model = KamstrupMeterModel(password=password, image=ImageTransferServer(faults, block_size=args.block_size),
                               max_receive_pdu=OMNIPOWER_MAX_RECEIVE_PDU)

    async def meter(stream: trio.abc.Stream) -> None:
        await run_kamstrup_meter(stream, model, framing, block_transfer=not args.no_blocks)

    trio.run(serve_meter, args.listen, meter, _announce)
    return EXIT_OK


def simulate_bsm(args: argparse.Namespace) -> int:
    from .simulators.bsm import BsmMeter, Contactor, Fault, run_bsm_meter
    from .simulators.serve import serve_meter

    meters: list[BsmMeter] = []

    async def serve(stream: trio.abc.Stream) -> None:
        # One meter for every connection: its clock, counters and snapshots outlive a client.
        if not meters:
            # A stuck contactor is a welded one: closed under a charging vehicle, it never opens, so
            # turn-on and turn-off fail with status 5 (one stuck open would never show the fault).
            stuck = Fault(args.contactor) is Fault.STUCK
            contactor = Contactor(fault=Fault(args.contactor), closed=stuck, target=stuck)
            meters.append(BsmMeter(unit=args.unit, contactor=contactor, doe=not args.no_doe, stall=args.stall, charging=stuck))
        await run_bsm_meter(stream, meters[0])

    trio.run(serve_meter, args.listen, serve, _announce)
    return EXIT_OK


def simulate_mep(args: argparse.Namespace) -> int:
    from .simulators.mep import DEMO_MEP_KEY, MepMeter, PortFaults, run_mep_meter
    from .simulators.serve import serve_meter

    key = mep_key_arg(args) if args.key is not None or args.key_ascii is not None else DEMO_MEP_KEY
    meters: list[MepMeter] = []
    faults = PortFaults()

    async def serve(stream: trio.abc.Stream) -> None:
        # One meter for every connection: its registers and sequence number outlive a client.
        if not meters:
            meters.append(MepMeter(key=key, serial=args.serial, alerts_pending=args.alerts, load_w=args.load))
            if args.optical_after is not None:
                faults.optical_session(trio.current_time() + args.optical_after, args.optical_for)
        await run_mep_meter(stream, meters[0], faults)

    trio.run(serve_meter, args.listen, serve, _announce)
    return EXIT_OK


def _announce(where: str) -> None:
    print(where, flush=True)


# -- demo ---------------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    from .service.config import HttpSection
    from .service.demo import run_demo, summary
    from .service.secrets import MIN_PASSWORD_LENGTH

    if args.token is not None and len(args.token) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"--token: an API token has at least {MIN_PASSWORD_LENGTH} characters")
    if HttpSection.listen_problem(args.http):
        raise UsageError(f"--http: {HttpSection.listen_problem(args.http)}")

    def show(reading: Reading) -> None:
        print(summary(reading), flush=True)

    return _service_exit(run_demo, args.http, args.token, _announce, show)


def run(args: argparse.Namespace) -> int:
    from .service.run import run_service

    return _service_exit(run_service, _load_config(args.config), _announce)


def token(args: argparse.Namespace) -> int:
    """A fresh API token: its hash replaces the stored one, the token is printed once."""
    import secrets as random_tokens

    from .service.secrets import Credentials, SecretsError
    from .service.startup import StartupError, prepare_state_dir

    config = _load_config(args.config)
    try:
        credentials = Credentials(prepare_state_dir(config.adapter.state_dir) / "token.hash")
        new_token = random_tokens.token_urlsafe(24)
        credentials.set(new_token)
    except (StartupError, SecretsError) as error:
        raise UsageError(str(error)) from None
    if config.adapter.token is not None:
        warn(f"{args.config}: adapter.token is set, and the service puts it back at its next start")
    print(new_token, flush=True)
    return EXIT_OK


def device_info(args: argparse.Namespace) -> int:
    """The access point's name and password (for the device's label), as JSON on stdout."""
    from .service.adapter import DeviceInfo
    from .service.run import choose_backend
    from .service.network import device_access_point
    from .service.startup import StartupError, prepare_state_dir

    config = _load_config(args.config)

    async def hardware_address() -> str | None:
        backend = await choose_backend(config.network)
        return await backend.hardware_address() if backend is not None else None

    try:
        state = prepare_state_dir(config.adapter.state_dir)
        mac = trio.run(hardware_address) or DeviceInfo().mac
        access_point, _ = device_access_point(state, mac, config.network.ap_password)
    except (StartupError, OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps({"ssid": access_point.ssid, "password": access_point.password, "mac": mac,
                      "ap_password": config.network.ap_password}), flush=True)
    return EXIT_OK


def network_down(args: argparse.Namespace) -> int:
    """Take the access point down: the unit's ExecStopPost, whatever ended the service."""
    from .service.run import choose_backend

    config = _load_config(args.config)

    async def down() -> None:
        backend = await choose_backend(config.network)
        if backend is not None:
            await backend.stop_access_point()

    trio.run(down)
    return EXIT_OK


# -- release and update ------------------------------------------------------------------------


def release_build(args: argparse.Namespace) -> int:
    """A bundle of meterlink's wheel and the wheels it needs for --platform; its path on stdout."""
    import tempfile

    from .service.release import BundleError, collect_wheels, host_platform_tag, wheel_version, write_bundle

    python = args.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    if not (args.source / "pyproject.toml").is_file():
        raise UsageError(f"{args.source}: no pyproject.toml; --source names a meterlink checkout")
    if args.wheels is not None and not args.wheels.is_dir():
        raise UsageError(f"--wheels {args.wheels}: not a directory")
    try:
        with tempfile.TemporaryDirectory(prefix="meterlink-release-") as work:
            wheels = collect_wheels(args.source, Path(work), args.platform, python, args.wheels)
            own = next(wheel for wheel in wheels if wheel.name.startswith("meterlink-"))
            bundle = write_bundle(args.out, wheels, wheel_version(own), args.platform or host_platform_tag(), python)
    except BundleError as error:
        warn(str(error))
        return EXIT_FAILED
    except OSError as error:
        raise UsageError(f"--out {args.out}: {error.strerror}") from None
    print(bundle, flush=True)
    return EXIT_OK


def release_sign(args: argparse.Namespace) -> int:
    from .service.release import BundleError, sign_bundle

    if not args.bundle.is_file():
        raise UsageError(f"{args.bundle}: no such file")
    try:
        sign_bundle(args.bundle, args.key)
    except BundleError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK


def update(args: argparse.Namespace) -> int:
    """Update to a bundle (file or URL) from a shell: download, verify, install, switch, then restart
    the unit; the new release confirms itself, check-boot rolls back one that does not."""
    import subprocess

    from .service.startup import StartupError, prepare_state_dir
    from .service.update import FileSource, UpdateError, Updater, UrlSource, from_config

    config = _load_config(args.config)
    # The refusal is this command's last line; the service's journal lines would only repeat it.
    logging.getLogger("meterlink.update").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.source.startswith(("http://", "https://")):
        source: FileSource | UrlSource = UrlSource(args.source, args.cert)
    elif Path(args.source).is_file():
        source = FileSource(Path(args.source).resolve())
    else:
        raise UsageError(f"{args.source}: neither a file nor an http(s) URL")

    def restart() -> None:
        if args.no_restart:
            warn("installed; restart the service to run it (systemctl restart meterlink)")
            return
        done = subprocess.run(["systemctl", "restart", "meterlink.service"], check=False)
        if done.returncode != 0:
            warn("systemctl restart meterlink failed: restart the service to run the new release")

    async def run_update() -> int:
        try:
            state = prepare_state_dir(config.adapter.state_dir)
            paths, settings = from_config(state, config.update)
            updater = Updater(paths, settings, restart=restart)
            outcome = await updater.update(source)
        except (StartupError, UpdateError) as error:
            raise UsageError(str(error)) from None
        if outcome.result != "restarting":
            warn(f"update refused: {outcome.reason}")
            return EXIT_FAILED
        print(json.dumps({"result": "installed", "version": outcome.version}), flush=True)
        return EXIT_OK

    return trio.run(run_update)


def check_boot(args: argparse.Namespace) -> int:
    """The unit's ExecStartPre, run from the base release: roll back an unconfirmed release; with
    --overdue (the update-check timer) one that runs but hangs past its deadline, then restart."""
    import subprocess
    import time

    from .service.startup import StartupError, prepare_state_dir
    from .service.update import check_boot as check, check_overdue, from_config

    config = _load_config(args.config)
    try:
        if args.overdue:  # only reads, unless a release hangs: never makes the service's state directory
            done = check_overdue(from_config(config.adapter.state_dir, config.update)[0], time.time())
        else:
            paths, settings = from_config(prepare_state_dir(config.adapter.state_dir), config.update)
            done = check(paths, time.time(), settings.max_boots)
    except (StartupError, OSError) as error:
        raise UsageError(f"check-boot: {error}") from None
    print(f"meterlink check-boot: {done or 'nothing to do'}", flush=True)
    if args.overdue and done and not args.no_restart:
        restarted = subprocess.run(["systemctl", "restart", "meterlink.service"], check=False)
        if restarted.returncode != 0:
            warn("systemctl restart meterlink failed: the service runs the hung release until it restarts")
            return EXIT_FAILED
    return EXIT_OK


def launch(args: argparse.Namespace) -> int:
    """The unit's ExecStart, from the base release: run the release `current` names (an update's),
    or this one when there is none or it is this one."""
    import os

    from .service.update import UpdatePaths, target_of

    config = _load_config(args.config)
    paths = UpdatePaths(config.adapter.state_dir, config.update.base_release, config.update.keys_dir,
                        config.update.ca_dir)
    target = target_of(paths)
    if target is not None and target != paths.base and (target / "bin" / "meterlink").is_file():
        os.execv(target / "bin" / "meterlink", ["meterlink", "run", "--config", str(args.config)])
    return run(args)


def _load_config(path: Path) -> Config:
    from .service.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _service_exit(main: Callable[..., Awaitable[None]], *args: object) -> int:
    """Run the service; exit non-zero when the root supervisor gave up, so systemd restarts us,
    and 2 for what a restart cannot mend (a busy port, a damaged state file)."""
    from .service.config import ConfigError
    from .service.startup import StartupError
    from .supervisor import IntensityExceeded, exit_code_for

    try:
        trio.run(main, *args)
    except (IntensityExceeded, StartupError, ConfigError, BaseExceptionGroup) as error:
        startup = _innermost(error, (StartupError, ConfigError))
        if startup is not None:
            raise UsageError(str(startup)) from None
        escalation = _innermost(error, (IntensityExceeded,))
        if escalation is None:
            raise
        warn(f"giving up: {escalation}")
        return exit_code_for(error)
    return EXIT_OK


def _innermost(error: BaseException, kinds: tuple[type[Exception], ...]) -> BaseException | None:
    """The first exception of `kinds` in `error`, which trio may have wrapped in nurseries' groups."""
    found = error.subgroup(kinds) if isinstance(error, BaseExceptionGroup) else error if isinstance(error, kinds) else None
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


# -- diagrams -----------------------------------------------------------------------------------


def diagrams(args: argparse.Namespace) -> int:
    from . import diagrams as generated

    try:
        if args.check:
            differing = generated.check(args.root)
            for name in differing:
                print(args.root / name, flush=True)
            if differing:
                warn("diagrams differ from the machines: run `meterlink diagrams` and commit them")
            return EXIT_FAILED if differing else EXIT_OK
        written, removed = generated.write(args.root)
    except generated.ToolMissing as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"{error.filename}: {error.strerror}") from None
    for name in written:
        print(args.root / name, flush=True)
    for name in removed:
        print(f"removed {args.root / name}", flush=True)
    return EXIT_OK


# -- parser -------------------------------------------------------------------------------------


def _add_serial_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial device path or tcp://HOST:PORT")
    parser.add_argument("--baud", type=int, help="baud rate")
    parser.add_argument("--parity", choices=["N", "E", "O"], type=str.upper, help="parity: N, E or O")
    parser.add_argument("--bytesize", type=int, choices=[5, 6, 7, 8], help="data bits")
    parser.add_argument("--stopbits", type=float, choices=[1, 1.5, 2], help="stop bits")


def _add_push_read_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, metavar="N", help="exit after N readings")
    parser.add_argument("--max-failures", type=_not_negative, default=DEFAULT_MAX_FAILURES, metavar="N",
                        help=f"give up (exit 1) after N telegrams in a row that cannot be decrypted or parsed "
                             f"(default {DEFAULT_MAX_FAILURES}; 0: never)")


def _not_negative(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    return int(text)


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(_not_negative(part.strip()) for part in text.split(",") if part.strip())


def _modbus_unit(text: str) -> int:
    if not text.isdecimal() or not 1 <= int(text) <= 247:
        raise argparse.ArgumentTypeError(f"expected a Modbus RTU unit, 1 to 247, got {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"expected seconds, more than 0, got {text!r}")
    return seconds


def _add_key_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--key", required=required, metavar="HEX", help="the meter's AES-128 key, 32 hex digits")
    parser.add_argument("--auth-key", metavar="HEX", help="the authentication key, for telegrams with a tag (SC 0x30/0x31)")


def _add_mep_key_options(parser: argparse.ArgumentParser) -> None:
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", metavar="HEX", help="the MEP Basic Key, 32 hex digits (or 40: the first 32 are used)")
    key.add_argument("--key-ascii", metavar="TEXT", help="the MEP Basic Key as its 16 to 20 ASCII characters")


def _add_dlms_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password", metavar="PW", help="LLS password: then client SAP 18, server logical 16")
    parser.add_argument("--client-sap", type=int, metavar="N", help="client SAP (default 16, or 18 with --password)")
    parser.add_argument("--server-logical", type=int, metavar="N", help="server logical device (default 1, or 16 with --password)")
    parser.add_argument("--server-physical", type=int, metavar="N", help="server physical address (default: none)")
    parser.add_argument("--framing", choices=["hdlc", "wrapper"], default="hdlc",
                        help="HDLC (default, also over TCP) or the IEC 62056-47 wrapper (TCP port 4059)")


def _add_listen_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="tcp://HOST:PORT", help="serve over TCP (port 0: pick one)")
    where.add_argument("--pty", action="store_const", const="pty", dest="listen", help="serve on a new pty")


def _add_payload_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--payload", choices=["auto", "dlms", "oms"], default="auto",
                         help="what SND_UD telegrams carry: DLMS segments (Kaifa, Sagemcom) or OMS telegrams (Netz OÖ "
                              "AMIS, EN 13757-3 mode 5); auto tells them by the CI field")


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2: `--help` shows the usage, a wrong option
    names itself without a screenful of it in front (subcommands inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="meterlink", description="Smart-meter customer-interface adapter.")
    parser.add_argument("--version", action="version", version=f"meterlink {software_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the links do on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo_cmd = commands.add_parser("demo", help="the adapter with simulated meters on every link")
    demo_cmd.add_argument("--http", metavar="HOST:PORT", default="127.0.0.1:8080", help="where to serve")
    demo_cmd.add_argument("--token", help="API token to use instead of a generated one")
    demo_cmd.set_defaults(handler=demo)

    run_cmd = commands.add_parser("run", help="the real service, configured by a TOML file")
    run_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="see meterlink.example.toml")
    run_cmd.set_defaults(handler=run)

    token_cmd = commands.add_parser("token", help="set a new API token (prints it once; only its hash is stored)")
    token_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    token_cmd.set_defaults(handler=token)

    device_info_cmd = commands.add_parser("device-info", help="the access point's name and password, for the label (JSON)")
    device_info_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    device_info_cmd.set_defaults(handler=device_info)
    network_down_cmd = commands.add_parser("network-down", help="take the access point down (the unit's ExecStopPost)")
    network_down_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    network_down_cmd.set_defaults(handler=network_down)

    release = commands.add_parser("release", help="make and sign update bundles").add_subparsers(dest="action", required=True)
    release_build_cmd = release.add_parser("build", help="a bundle of meterlink and its wheels for a platform")
    release_build_cmd.add_argument("--out", type=Path, default=Path("dist"), metavar="DIR", help="default: ./dist")
    release_build_cmd.add_argument("--platform", metavar="TAG",
                                   help="wheel platform tag, e.g. manylinux2014_aarch64 (default: this machine's)")
    release_build_cmd.add_argument("--python", metavar="X.Y", help="the adapter's Python (default: this one's)")
    release_build_cmd.add_argument("--source", type=Path, default=Path("."), metavar="DIR", help="the checkout (default: .)")
    release_build_cmd.add_argument("--wheels", type=Path, metavar="DIR",
                                   help="take the needed wheels from DIR only, without an index (offline builds)")
    release_build_cmd.set_defaults(handler=release_build)
    release_sign_cmd = release.add_parser("sign", help="add a detached Ed25519 signature of the bundle's manifest")
    release_sign_cmd.add_argument("--key", type=Path, required=True, metavar="FILE", help="Ed25519 private key (PEM)")
    release_sign_cmd.add_argument("bundle", type=Path, metavar="BUNDLE")
    release_sign_cmd.set_defaults(handler=release_sign)

    update_cmd = commands.add_parser("update", help="update meterlink to a signed bundle (a file or an http(s) URL)")
    update_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    update_cmd.add_argument("--cert", metavar="NAME", help="https: a CA file in update.ca_dir (default ca_cert.pem)")
    update_cmd.add_argument("--no-restart", action="store_true", help="do not restart the service afterwards")
    update_cmd.add_argument("source", metavar="BUNDLE|URL")
    update_cmd.set_defaults(handler=update)
    check_boot_cmd = commands.add_parser("check-boot", help="roll back an unconfirmed update (the unit's ExecStartPre)")
    check_boot_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    check_boot_cmd.add_argument("--overdue", action="store_true",
                                help="while the service runs: roll back a release hung past its deadline, and restart it")
    check_boot_cmd.add_argument("--no-restart", action="store_true", help="with --overdue: do not restart the service")
    check_boot_cmd.set_defaults(handler=check_boot)
    launch_cmd = commands.add_parser("launch", help="run the release an update installed, else this one (the unit's ExecStart)")
    launch_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="the service's config file")
    launch_cmd.set_defaults(handler=launch)

    decode = commands.add_parser("decode", help="decode captured frames").add_subparsers(dest="link", required=True)
    decode_p1_cmd = decode.add_parser("p1", help="decode P1 telegrams (text; encrypted ones as hex text or binary)")
    decode_p1_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    decode_p1_cmd.add_argument("--legacy", action="store_true", help="accept DSMR 2.2/3 telegrams without CRC")
    _add_key_options(decode_p1_cmd, required=False)
    decode_p1_cmd.set_defaults(handler=decode_p1)
    decode_mep_cmd = decode.add_parser("mep", help="decode MEP request/response pairs (hex, one message a line)")
    decode_mep_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    _add_mep_key_options(decode_mep_cmd)
    decode_mep_cmd.add_argument("--energy-unit", type=int, choices=[1, 10, 100], default=1,
                                help="a CT meter's energy register unit (ET55)")
    decode_mep_cmd.set_defaults(handler=decode_mep)
    decode_mbus_cmd = decode.add_parser("mbus", help="decode M-Bus frames (hex text or binary)")
    decode_mbus_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    _add_key_options(decode_mbus_cmd, required=True)
    _add_payload_option(decode_mbus_cmd)
    decode_mbus_cmd.set_defaults(handler=decode_mbus)
    decode_wmbus_cmd = decode.add_parser("wmbus", help="decode wireless M-Bus telegrams, one per line as hex (format A or "
                                                       "B, with or without the block CRCs) or as rtl_wmbus prints them")
    decode_wmbus_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    decode_wmbus_cmd.add_argument("--key", metavar="HEX", help="the meter's AES-128 key (OMS mode 5), 32 hex digits")
    decode_wmbus_cmd.add_argument("--id", action="append", metavar="ID", help="only this meter (8 digits; repeat for more)")
    decode_wmbus_cmd.set_defaults(handler=decode_wmbus)
    decode_hdlc_cmd = decode.add_parser("hdlc", help="readings of the data-notifications pushed in HDLC frames (hex text or binary)")
    decode_hdlc_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    _add_key_options(decode_hdlc_cmd, required=False)
    decode_hdlc_cmd.add_argument("--annotate", action="store_true",
                                 help="describe every frame and the APDU in it instead, as sent (no decryption)")
    decode_hdlc_cmd.set_defaults(handler=decode_hdlc)

    read = commands.add_parser("read", help="be the adapter on one link").add_subparsers(dest="link", required=True)
    read_p1_cmd = read.add_parser("p1", help="read a P1 port (115200 8N1)")
    _add_serial_options(read_p1_cmd)
    _add_push_read_options(read_p1_cmd)
    read_p1_cmd.add_argument("--push-interval", type=float, default=1.0, help="seconds between telegrams (stale after 3)")
    read_p1_cmd.add_argument("--legacy", action="store_true", help="DSMR 2.2/3: 9600 7E1, telegrams without CRC")
    read_p1_cmd.add_argument("--data-request", choices=["rts", "dtr"], help="raise this line as the data-request signal")
    _add_key_options(read_p1_cmd, required=False)
    read_p1_cmd.set_defaults(handler=read_p1)
    read_mbus_cmd = read.add_parser("mbus", help="be the adapter on an M-Bus push link (2400 8E1; --payload oms: 9600 8E1)")
    _add_payload_option(read_mbus_cmd)
    _add_serial_options(read_mbus_cmd)
    _add_key_options(read_mbus_cmd, required=True)
    _add_push_read_options(read_mbus_cmd)
    read_mbus_cmd.add_argument("--push-interval", type=float, default=5.0, help="seconds between telegrams (stale after 3)")
    read_mbus_cmd.set_defaults(handler=read_mbus, data_request=None)
    read_wmbus_cmd = read.add_parser("wmbus", help="read wireless M-Bus meters (T1) through a receiver")
    read_wmbus_cmd.add_argument("--receiver", required=True, choices=["im871a", "amb8465", "cul", "rtl_wmbus"],
                                help="iM871A (57600 8N1), AMB8465 (9600 8N1), CUL (38400 8N1), or rtl_wmbus's output")
    read_wmbus_cmd.add_argument("--port", help="the stick's serial device path or tcp://HOST:PORT")
    read_wmbus_cmd.add_argument("--command", metavar="CMD", help="rtl_wmbus: the command whose output is read, e.g. "
                                                               "\"sh -c 'rtl_sdr -f 868.95M -s 1.6e6 - | rtl_wmbus'\"")
    read_wmbus_cmd.add_argument("--baud", type=int, help="baud rate")
    read_wmbus_cmd.add_argument("--parity", choices=["N", "E", "O"], type=str.upper, help="parity: N, E or O")
    read_wmbus_cmd.add_argument("--bytesize", type=int, choices=[5, 6, 7, 8], help="data bits")
    read_wmbus_cmd.add_argument("--stopbits", type=float, choices=[1, 1.5, 2], help="stop bits")
    read_wmbus_cmd.add_argument("--key", metavar="HEX", help="the meters' AES-128 key (OMS mode 5), 32 hex digits")
    read_wmbus_cmd.add_argument("--id", action="append", metavar="ID", help="only this meter (8 digits; repeat for more)")
    _add_push_read_options(read_wmbus_cmd)
    read_wmbus_cmd.add_argument("--push-interval", type=float, default=120.0, help="seconds between a meter's telegrams "
                                                                                 "(stale after 3 without any)")
    read_wmbus_cmd.set_defaults(handler=read_wmbus, data_request=None)
    read_hdlc_cmd = read.add_parser("hdlc-push", help="read a meter that pushes DLMS in HDLC frames (2400 8E1)")
    _add_serial_options(read_hdlc_cmd)
    _add_key_options(read_hdlc_cmd, required=False)
    _add_push_read_options(read_hdlc_cmd)
    read_hdlc_cmd.add_argument("--push-interval", type=float, default=HDLC_PUSH_INTERVAL,
                               help="seconds between notifications (stale after 3)")
    read_hdlc_cmd.set_defaults(handler=read_hdlc_push, data_request=None)
    read_dlms_cmd = read.add_parser("dlms", help="be a DLMS/COSEM client over HDLC or the wrapper (9600 8N1)")
    _add_serial_options(read_dlms_cmd)
    _add_dlms_options(read_dlms_cmd)
    read_dlms_cmd.add_argument("--get", action="extend", nargs="+", required=True, metavar="CLASS:OBIS:ATTR",
                               help="attribute to read, e.g. 3:1-1:1.8.0.255:2 (repeat or list several)")
    read_dlms_cmd.add_argument("--from", dest="date_from", metavar="ISO", help="profile rows from this local time")
    read_dlms_cmd.add_argument("--to", dest="date_to", metavar="ISO", help="profile rows up to this local time")
    read_dlms_cmd.add_argument("--clock-obis", default="0.1.1.0.0.255", metavar="OBIS",
                               help="the clock a profile's rows are selected by (default: Kamstrup's 0.1.1.0.0.255)")
    read_dlms_cmd.set_defaults(handler=read_dlms, data_request=None)

    image_cmd = commands.add_parser("image-transfer", help="update a DLMS meter's firmware (class 18 image transfer)")
    _add_serial_options(image_cmd)
    _add_dlms_options(image_cmd)
    image_cmd.add_argument("--image", required=True, metavar="FILE", help="the image to send")
    image_cmd.add_argument("--identifier", metavar="ID", help="image identifier for image_transfer_initiate (default: FILE's stem)")
    image_cmd.add_argument("--resume", action="store_true",
                           help="go on with the partial image the meter holds, by FILE.transfer.json of an earlier run")
    image_cmd.add_argument("--signature-hash", choices=["sha256"],
                           help="compare image_to_activate_signature with this hash of FILE (else it is only reported)")
    image_cmd.add_argument("--revision-obis", default="1.1.0.2.0.255", metavar="OBIS",
                           help="the Data object (class 1) holding the software revision (default: Kamstrup's "
                                "SoftwareNumberRevisionAscii 1.1.0.2.0.255)")
    image_cmd.add_argument("--expect-revision", metavar="TEXT",
                           help="the revision the new image must report (default: any other than before)")
    image_cmd.set_defaults(handler=image_transfer, data_request=None)

    read_bsm_cmd = read.add_parser("bsm", help="read a BSM-WS36A's AC meter over Modbus RTU (19200 8E1, unit 42)")
    _add_serial_options(read_bsm_cmd)
    read_bsm_cmd.add_argument("--unit", type=_modbus_unit, default=42, help="Modbus unit (default 42, the factory setting)")
    read_bsm_cmd.add_argument("--interval", type=_positive_seconds, default=5.0, metavar="S", help="seconds between readings (default 5)")
    read_bsm_cmd.add_argument("--count", type=_not_negative, metavar="N", help="stop after N readings")
    read_bsm_cmd.set_defaults(handler=read_bsm, data_request=None)

    read_mep_cmd = read.add_parser("mep", help="read an OSGP meter (NES MTR1000/3000) on its MEP port (9600 8N1)")
    _add_serial_options(read_mep_cmd)
    _add_mep_key_options(read_mep_cmd)
    read_mep_cmd.add_argument("--interval", type=_positive_seconds, default=5.0, metavar="S",
                              help="seconds between readings (default 5, at least 3)")
    read_mep_cmd.add_argument("--energy-unit", type=int, choices=[1, 10, 100], default=1,
                              help="a CT meter's energy register unit (ET55): BT23 counts Wh/varh in 1, 10 or 100")
    read_mep_cmd.add_argument("--count", type=_not_negative, metavar="N", help="stop after N readings")
    read_mep_cmd.set_defaults(handler=read_mep, data_request=None)

    bsm = commands.add_parser("bsm", help="signed snapshots of a BSM-WS36A").add_subparsers(dest="action", required=True)
    bsm_snapshot_cmd = bsm.add_parser("snapshot", help="take a signed snapshot; print it as JSON with signature_valid")
    _add_serial_options(bsm_snapshot_cmd)
    bsm_snapshot_cmd.add_argument("--unit", type=_modbus_unit, default=42, help="Modbus unit (default 42)")
    bsm_snapshot_cmd.add_argument("--type", required=True, choices=["current", "turn-on", "turn-off", "start", "end"])
    for n in (1, 2, 3):
        bsm_snapshot_cmd.add_argument(f"--meta{n}", metavar="TEXT", help=f"metadata {n}, written before the snapshot")
    bsm_snapshot_cmd.set_defaults(handler=bsm_snapshot, data_request=None)
    bsm_verify_cmd = bsm.add_parser("verify", help="verify a saved snapshot (JSON) or an OCMF string")
    bsm_verify_cmd.add_argument("file", metavar="FILE|-")
    bsm_verify_cmd.add_argument("--public-key", metavar="HEX", help="the meter's DER public key (needed for OCMF)")
    bsm_verify_cmd.set_defaults(handler=bsm_verify)

    detect_cmd = commands.add_parser("detect", help="find a meter's serial setting, framing and maker; print a [[link]] for it")
    detect_cmd.add_argument("--port", required=True, help="serial device path or tcp://HOST:PORT")
    _add_key_options(detect_cmd, required=False)
    detect_cmd.add_argument("--listen-time", type=float, default=DETECT_LISTEN_TIME, metavar="S",
                            help=f"seconds at each serial setting (default {DETECT_LISTEN_TIME:g}; 70 hears an M-Bus "
                                 f"meter in search mode, which calls once a minute)")
    detect_cmd.set_defaults(handler=detect)

    simulate = commands.add_parser("simulate", help="a simulated meter").add_subparsers(dest="meter", required=True)
    simulate_p1_cmd = simulate.add_parser("p1", help="a P1 meter pushing a telegram every second")
    _add_listen_options(simulate_p1_cmd)
    simulate_p1_cmd.add_argument("--interval", type=float, default=1.0, help="seconds between telegrams")
    simulate_p1_cmd.add_argument("--key", metavar="HEX", help="send the telegrams encrypted with this key, 32 hex digits "
                                 "(general-glo-ciphering, as the Luxembourg Smarty and the Sagemcom T210-D-r)")
    simulate_p1_cmd.add_argument("--auth-key", metavar="HEX", help="with --key: authenticate them with this key (SC 0x30)")
    simulate_p1_cmd.set_defaults(handler=simulate_p1)
    simulate_kaifa_cmd = simulate.add_parser("kaifa", help="a Kaifa MA309M pushing encrypted M-Bus telegrams")
    _add_listen_options(simulate_kaifa_cmd)
    _add_key_options(simulate_kaifa_cmd, required=False)
    simulate_kaifa_cmd.add_argument("--interval", type=float, default=5.0, help="seconds between telegrams")
    simulate_kaifa_cmd.add_argument("--one-way", action="store_true", help="push without search telegram or waiting for acks")
    simulate_kaifa_cmd.set_defaults(handler=simulate_kaifa)
    simulate_amis_cmd = simulate.add_parser("amis", help="a Netz OÖ AMIS meter (Siemens TD-3511): M-Bus handshake, "
                                                        "OMS mode-5 telegrams (9600 8E1)")
    _add_listen_options(simulate_amis_cmd)
    simulate_amis_cmd.add_argument("--key", metavar="HEX", help="the meter's AES key, 32 hex digits (default: the demo's)")
    simulate_amis_cmd.add_argument("--interval", type=float, default=1.0, help="seconds between telegrams")
    simulate_amis_cmd.set_defaults(handler=simulate_amis)
    simulate_wmbus_cmd = simulate.add_parser("wmbus", help="a Linz Netz NES meter (T1, OMS mode 5) heard through a receiver")
    simulate_wmbus_cmd.add_argument("--receiver", required=True, choices=["im871a", "amb8465", "cul", "rtl_wmbus"])
    where = simulate_wmbus_cmd.add_mutually_exclusive_group()
    where.add_argument("--listen", metavar="tcp://HOST:PORT", help="serve the stick over TCP (port 0: pick one)")
    where.add_argument("--pty", action="store_const", const="pty", dest="listen", help="serve the stick on a new pty")
    simulate_wmbus_cmd.add_argument("--key", metavar="HEX", help="the meter's AES key, 32 hex digits (default: the demo's)")
    simulate_wmbus_cmd.add_argument("--id", metavar="ID", help="the meter's identification number (default 30071234)")
    simulate_wmbus_cmd.add_argument("--interval", type=float, default=10.0, help="seconds between telegrams")
    simulate_wmbus_cmd.set_defaults(handler=simulate_wmbus)
    simulate_hdlc_cmd = simulate.add_parser("hdlc-push", help="a meter pushing DLMS data-notifications in HDLC UI frames")
    _add_listen_options(simulate_hdlc_cmd)
    _add_key_options(simulate_hdlc_cmd, required=False)
    simulate_hdlc_cmd.add_argument("--interval", type=float, default=HDLC_PUSH_INTERVAL, help="seconds between notifications")
    simulate_hdlc_cmd.add_argument("--segmented", action="store_true", help="split each notification over frames (segmentation bit)")
    simulate_hdlc_cmd.add_argument("--blocks", action="store_true", help="send each notification as general-block-transfer blocks")
    simulate_hdlc_cmd.add_argument("--layout", choices=LAYOUTS, default=LAYOUTS[0],
                                   help="pairs: OBIS, value, scaler-unit (Austria); aidon: {OBIS, value, scaler-unit}; "
                                        "kamstrup: list id, OBIS and values; kaifa: list id and values (Norway)")
    simulate_hdlc_cmd.set_defaults(handler=simulate_hdlc_push)
    simulate_kamstrup_cmd = simulate.add_parser("kamstrup", help="a Kamstrup K351C / OMNIPOWER answering DLMS/COSEM")
    _add_listen_options(simulate_kamstrup_cmd)
    simulate_kamstrup_cmd.add_argument("--framing", choices=["hdlc", "wrapper"], default="hdlc",
                                       help="HDLC (default) or the IEC 62056-47 wrapper")
    simulate_kamstrup_cmd.add_argument("--password", metavar="PW", help="the LLS password (default 12345)")
    simulate_kamstrup_cmd.add_argument("--no-blocks", action="store_true",
                                       help="send long answers in HDLC segments instead of GET blocks")
    faults = simulate_kamstrup_cmd.add_argument_group("image transfer (class 18) and its faults")
    faults.add_argument("--block-size", type=_positive, default=985, metavar="N", help="image_block_size (default 985, the seed's)")
    faults.add_argument("--drop-blocks", type=_numbers, default=(), metavar="N,N", help="blocks acknowledged but lost, once")
    faults.add_argument("--busy-blocks", type=_numbers, default=(), metavar="N,N", help="blocks answered temporary-failure, once")
    faults.add_argument("--verify-fails", action="store_true", help="the verification ends with status 4")
    faults.add_argument("--activation-refusals", type=_not_negative, default=0, metavar="N",
                        help="image_activate answers temporary-failure N times first")
    faults.add_argument("--activation-broken", action="store_true", help="the meter reboots but keeps the old image")
    faults.add_argument("--reboot-seconds", type=float, default=4.0, metavar="S",
                        help="how long the meter is unreachable once it reboots (default 4)")
    faults.add_argument("--drop-link-after", type=_positive, metavar="N", help="drop the link once after N blocks")
    simulate_kamstrup_cmd.set_defaults(handler=simulate_kamstrup)

    simulate_mep_cmd = simulate.add_parser("mep", help="an NES meter (OSGP) on its MEP port")
    _add_listen_options(simulate_mep_cmd)
    simulate_mep_cmd.add_argument("--key", metavar="HEX", help="the MEP key (default: the demo's, 4d45502d44454d4f2d4b45592d303031)")
    simulate_mep_cmd.add_argument("--key-ascii", metavar="TEXT", help="the MEP key as 16 to 20 ASCII characters")
    simulate_mep_cmd.add_argument("--serial", default="MTR3000-0042", help="the utility serial number (ET03)")
    simulate_mep_cmd.add_argument("--load", type=int, default=1500, metavar="W", help="imported power; negative: exported")
    simulate_mep_cmd.add_argument("--alerts", action="store_true", help="alert flags pending: 00 00 every second")
    simulate_mep_cmd.add_argument("--optical-after", type=_positive_seconds, metavar="S",
                                  help="an optical session takes the UART S seconds after the first connection")
    simulate_mep_cmd.add_argument("--optical-for", type=_positive_seconds, default=30.0, metavar="S",
                                  help="how long the optical session lasts (default 30)")
    simulate_mep_cmd.set_defaults(handler=simulate_mep)
    simulate_bsm_cmd = simulate.add_parser("bsm", help="a BSM-WS36A signing meter on Modbus RTU")
    _add_listen_options(simulate_bsm_cmd)
    simulate_bsm_cmd.add_argument("--unit", type=_modbus_unit, default=42, help="Modbus unit (default 42)")
    simulate_bsm_cmd.add_argument("--contactor", choices=["none", "stuck", "slow", "lie"], default="none",
                                  help="a contactor fault: stuck is welded closed (turn-on/turn-off fail with status 5), slow misses "
                                       "the 0.5 s feedback, lie: its feedback contact reports what it was told")
    simulate_bsm_cmd.add_argument("--no-doe", action="store_true", help="the DOE release withdrawn (turn-on fails with status 4)")
    simulate_bsm_cmd.add_argument("--stall", action="store_true", help="snapshots never finish signing")
    simulate_bsm_cmd.set_defaults(handler=simulate_bsm)

    diagrams_cmd = commands.add_parser("diagrams", help="write diagrams/ from the machines")
    diagrams_cmd.add_argument("--check", action="store_true", help="exit 1 if the files differ from the machines")
    diagrams_cmd.add_argument("--root", type=Path, default=Path("diagrams"), metavar="DIR", help="default: ./diagrams")
    diagrams_cmd.set_defaults(handler=diagrams)
    _verbose_everywhere(parser)
    return parser


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept -v after the command too (`meterlink demo -v`), not only before it."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for sub in action.choices.values():
            if sub._subparsers is None:
                sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="log what the links do on stderr")
            else:
                _verbose_everywhere(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        return args.handler(args)
    except (UsageError, TransportError) as error:
        warn(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseExceptionGroup as group:
        # Under a trio nursery Ctrl-C arrives wrapped in a group: still just the user stopping us.
        if group.split(KeyboardInterrupt)[1] is None:
            return EXIT_OK
        # So does a port that cannot be opened inside a simulator's or a link's nursery.
        usage = _innermost(group, (UsageError, TransportError))
        if usage is None:
            raise
        warn(str(usage))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
