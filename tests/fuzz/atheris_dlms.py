"""atheris harness: DLMS/COSEM APDUs, A-XDR, data-notifications, general-block-transfer and the
IEC 62056-47 wrapper (seeds: the Kamstrup session's APDUs and the real notifications).

Modes: 0 parse_apdu; 1 the wrapper framer, then parse_apdu on each frame; 2 parse_notification and
the push mapping; 3 decode_data; 4 parse_block. Only ProtocolError may escape.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.protocols.dlms.apdu import parse_apdu
    from meterlink.protocols.dlms.axdr import decode_data
    from meterlink.protocols.dlms.gbt import parse_block
    from meterlink.protocols.dlms.notification import parse_notification, to_reading
    from meterlink.protocols.errors import ProtocolError
    from meterlink.protocols.wrapper import WrapperFrame, WrapperFramer
    from mutations import strict_json
    from test_fuzz_push_mapping import SEEDS as NOTIFICATIONS
    from test_fuzz_repaired import WRAPPED
    from test_hdlc_push_fuzz import BLOCK_APDUS


def one_input(data: bytes) -> None:
    which, rest = mode(data, 5)
    try:
        if which == 0:
            parse_apdu(rest)
        elif which == 1:
            for frame in WrapperFramer().feed(rest):
                if isinstance(frame, WrapperFrame):
                    try:
                        parse_apdu(frame.apdu)
                    except ProtocolError:
                        pass
        elif which == 2:
            strict_json(to_reading(parse_notification(rest), "mbus", 1.0).to_json())
        elif which == 3:
            decode_data(rest)
        else:
            parse_block(rest)
    except ProtocolError:
        pass


if __name__ == "__main__":
    run("dlms", one_input, seeded(0, WRAPPED) + seeded(1, [WrapperFrame(1, 16, a).to_bytes() for a in WRAPPED])
        + seeded(2, NOTIFICATIONS) + seeded(3, [n[14:] for n in NOTIFICATIONS]) + seeded(4, BLOCK_APDUS))
