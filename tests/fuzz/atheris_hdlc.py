"""atheris harness: the HDLC framer, the HDLC push reader and `meterlink decode hdlc`.

Mode 0 feeds the input as a byte stream to the framer and push reader; mode 1 takes it as an
information field (after the LLC header) and builds a frame with right HCS and FCS around it;
mode 2 takes it as a plaintext and encrypts it with the Kärnten Netz capture's key (with a tag)
into one frame; mode 3 describes the input as a capture.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.machines.base import Publish
    from meterlink.machines.hdlc_push import HdlcPushReader
    from meterlink.protocols.dlms.describe import describe_capture
    from meterlink.protocols.hdlc import HdlcFramer, parse_frame
    from mutations import hdlc_frame, strict_json
    from test_fuzz_repaired import HDLC_CLIENT, HDLC_KEYS, HDLC_PUSH, push_plaintext, reencrypted

TEMPLATE = parse_frame(HDLC_PUSH[0])
CAPTURE = "iskra_hdlc_kaerntennetz_gh787"
LLC = b"\xe6\xe7\x00"


def push(stream: bytes, keys: list) -> None:
    reader = HdlcPushReader(keys=lambda: keys)
    for event in HdlcFramer().feed(stream):
        reader.handle(event, 1.0)
    for action in reader.take_actions():
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())


def one_input(data: bytes) -> None:
    which, rest = mode(data, 4)
    if which == 0:
        push(rest, HDLC_KEYS)
    elif which == 1:
        push(hdlc_frame(TEMPLATE, LLC + rest), HDLC_KEYS)
    elif which == 2:
        apdu, keys = reencrypted(CAPTURE, rest[:1900], tagged=True)
        push(hdlc_frame(TEMPLATE, LLC + apdu), [keys])
    else:
        strict_json(describe_capture(rest))


if __name__ == "__main__":
    run("hdlc", one_input, seeded(0, HDLC_PUSH) + seeded(1, [parse_frame(f).information[3:] for f in HDLC_PUSH])
        + seeded(2, [push_plaintext(CAPTURE)]) + seeded(3, HDLC_CLIENT))
