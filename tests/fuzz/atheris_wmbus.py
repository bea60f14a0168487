"""atheris harness: wireless M-Bus frames and the USB receivers' framings (iM871A, AMB8465, CUL,
rtl_wmbus), into the wireless M-Bus link machine.

Modes: 0 the input as a frame (L first) parsed and decoded; 1 the input as a frame without CRCs,
given format A block CRCs (made right), then as a CUL prints it into the link, so that mutations
reach the application layer; 2-5 the input as each receiver's byte stream into the link.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.machines.base import Publish
    from meterlink.machines.wmbus import WMBusReceiver
    from meterlink.protocols.dlms.security import CipherKeys
    from meterlink.protocols.errors import ProtocolError
    from meterlink.protocols.oms import decode_oms_push
    from meterlink.protocols.wmbus import parse_frame, with_crcs_a
    from meterlink.protocols.wmbus_receivers import CulFramer, cul_line
    from mutations import strict_json
    from test_fuzz_repaired import RADIO_FRAMES, RADIO_KEYS
    from test_wmbus import STICK_STREAMS

KEYS = [CipherKeys(key) for key in RADIO_KEYS.values()]
FRAMERS = [make for make, _ in STICK_STREAMS.values()]


def link(framer: object, stream: bytes) -> None:
    receiver = WMBusReceiver(keys=lambda meter_id: KEYS)
    for event in framer.feed(stream):
        receiver.handle(event, 1.0)
    for action in receiver.take_actions():
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())


def one_input(data: bytes) -> None:
    which, rest = mode(data, 2 + len(FRAMERS))
    if which == 0:
        try:
            frame = parse_frame(rest)
            decode_oms_push(frame.apdu, KEYS, "wmbus", 1.0, frame.address)
        except ProtocolError:
            pass
    elif which == 1:
        if rest and len(rest) == rest[0] + 1:
            link(CulFramer(), cul_line(with_crcs_a(rest)))
    else:
        link(FRAMERS[which - 2](), rest)


if __name__ == "__main__":
    run("wmbus", one_input, seeded(0, RADIO_FRAMES) + seeded(1, RADIO_FRAMES)
        + [seed for n, (_, stream) in enumerate(STICK_STREAMS.values()) for seed in seeded(2 + n, [stream])])
