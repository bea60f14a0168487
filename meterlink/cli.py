"""`meterlink ...`: the command-line contract of ARCHITECTURE.md.

Decoding and reading commands print one JSON object per line on stdout, a line on stderr for each
telegram that fails, and exit 0 when everything asked for was done, 1 when something failed, 2 for
usage errors (unknown option, unreadable file, a port that cannot be opened).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from .protocols.readings import Reading
from .transports import SerialSettings, TransportError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    from .protocols.p1 import CrcStatus, P1Framer, TelegramFramed

    failed = decoded = 0
    for event in P1Framer().feed(read_input(args.file)):
        if not isinstance(event, TelegramFramed):
            continue
        accepted = event.crc is CrcStatus.OK or (event.crc is CrcStatus.ABSENT and args.legacy)
        if accepted and event.telegram is not None:
            print_reading(event.telegram.to_reading(None))
            decoded += 1
            continue
        failed += 1
        if event.error is not None:
            warn(f"telegram {decoded + failed}: {event.error}")
        elif event.crc is CrcStatus.ABSENT:
            warn(f"telegram {decoded + failed}: no CRC (use --legacy for DSMR 2.2/3 telegrams)")
        else:
            warn(f"telegram {decoded + failed}: CRC-16 does not match")
    if decoded + failed == 0:
        warn("no complete P1 telegram ('/' ... '!' CRC line) in the input")
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


def read_p1(args: argparse.Namespace) -> int:
    from .actors.p1 import DSMR22_SERIAL, P1_SERIAL, P1Link
    from .service.read import read_one_link

    default = DSMR22_SERIAL if args.legacy else P1_SERIAL
    link = P1Link(args.port, serial_settings(args, default), args.push_interval, legacy=args.legacy)
    return trio.run(read_one_link, link, args.count, print_reading, warn)


# -- simulate -----------------------------------------------------------------------------------


def simulate_p1(args: argparse.Namespace) -> int:
    from .simulators.serve import serve_p1

    trio.run(serve_p1, args.listen, args.interval, _announce)
    return EXIT_OK


def _announce(where: str) -> None:
    print(where, flush=True)


# -- demo ---------------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    from .service.demo import run_demo, summary

    def show(reading: Reading) -> None:
        print(summary(reading), flush=True)

    return _service_exit(run_demo, args.http, args.token, _announce, show if args.verbose else None)


def run(args: argparse.Namespace) -> int:
    from .service.config import ConfigError, load_config
    from .service.run import run_service

    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return _service_exit(run_service, config, _announce)


def _service_exit(main: Callable[..., Awaitable[None]], *args: object) -> int:
    """Run the service; exit non-zero when the root supervisor gave up, so systemd restarts us."""
    from .supervisor import IntensityExceeded, exit_code_for

    try:
        trio.run(main, *args)
    except (IntensityExceeded, BaseExceptionGroup) as error:
        escalation = error.subgroup(IntensityExceeded) if isinstance(error, BaseExceptionGroup) else error
        if escalation is None:
            raise
        warn(f"giving up: {escalation}")
        return exit_code_for(error)
    return EXIT_OK


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


def _add_listen_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="tcp://HOST:PORT", help="serve over TCP (port 0: pick one)")
    where.add_argument("--pty", action="store_const", const="pty", dest="listen", help="serve on a new pty")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterlink", description="Smart-meter customer-interface adapter.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the links do on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo_cmd = commands.add_parser("demo", help="the adapter with simulated meters on every link")
    demo_cmd.add_argument("--http", metavar="HOST:PORT", default="127.0.0.1:8080", help="where to serve")
    demo_cmd.add_argument("--token", help="API token to use instead of a generated one")
    demo_cmd.set_defaults(handler=demo)

    run_cmd = commands.add_parser("run", help="the real service, configured by a TOML file")
    run_cmd.add_argument("--config", required=True, type=Path, metavar="FILE", help="see meterlink.example.toml")
    run_cmd.set_defaults(handler=run)

    decode = commands.add_parser("decode", help="decode captured frames").add_subparsers(dest="link", required=True)
    decode_p1_cmd = decode.add_parser("p1", help="decode P1 telegrams")
    decode_p1_cmd.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    decode_p1_cmd.add_argument("--legacy", action="store_true", help="accept DSMR 2.2/3 telegrams without CRC")
    decode_p1_cmd.set_defaults(handler=decode_p1)

    read = commands.add_parser("read", help="be the adapter on one link").add_subparsers(dest="link", required=True)
    read_p1_cmd = read.add_parser("p1", help="read a P1 port (115200 8N1)")
    _add_serial_options(read_p1_cmd)
    read_p1_cmd.add_argument("--count", type=int, help="exit after N readings")
    read_p1_cmd.add_argument("--push-interval", type=float, default=1.0, help="seconds between telegrams (stale after 3)")
    read_p1_cmd.add_argument("--legacy", action="store_true", help="DSMR 2.2/3: 9600 7E1, telegrams without CRC")
    read_p1_cmd.add_argument("--data-request", choices=["rts", "dtr"], help="raise this line as the data-request signal")
    read_p1_cmd.set_defaults(handler=read_p1)

    simulate = commands.add_parser("simulate", help="a simulated meter").add_subparsers(dest="meter", required=True)
    simulate_p1_cmd = simulate.add_parser("p1", help="a P1 meter pushing a telegram every second")
    _add_listen_options(simulate_p1_cmd)
    simulate_p1_cmd.add_argument("--interval", type=float, default=1.0, help="seconds between telegrams")
    simulate_p1_cmd.set_defaults(handler=simulate_p1)

    diagrams_cmd = commands.add_parser("diagrams", help="write diagrams/ from the machines")
    diagrams_cmd.add_argument("--check", action="store_true", help="exit 1 if the files differ from the machines")
    diagrams_cmd.add_argument("--root", type=Path, default=Path("diagrams"), metavar="DIR", help="default: ./diagrams")
    diagrams_cmd.set_defaults(handler=diagrams)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
