"""atheris harness: MEP (OSGP/NES optical) messages and the C12.19 tables they carry.

Modes: 0 the input as the meter's byte stream (the receiver, then split_messages); 1 the input as a
response's payload to the guide's BT23 read, its digest computed with the guide's key, so that
mutations reach the response and table decoders; 2 the input as table bytes for each C12.19 decoder.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.protocols.c1219 import (decode_bt00, decode_bt21, decode_bt22, decode_bt23, decode_bt27,
                                           decode_bt28, decode_bt52, decode_serial)
    from meterlink.protocols.errors import ProtocolError
    from meterlink.protocols.mep import MepError, MepReceiver, TableData, decode_response, digest_update, split_messages
    from mep_data import KEY, guide_messages
    from test_fuzz_repaired import BT23_DIMS, MEP_READS

SENT, RESPONSE = MEP_READS[1]


def one_input(data: bytes) -> None:
    which, rest = mode(data, 3)
    try:
        if which == 0:
            MepReceiver().feed(rest)
            split_messages(rest)
        elif which == 1:
            try:
                answer = decode_response(rest + digest_update(KEY, rest, SENT.state).digest, SENT, KEY)
            except MepError as error:
                assert "does not authenticate" not in str(error)
                return
            if isinstance(answer, TableData):
                decode_bt23(answer.data, BT23_DIMS)
        else:
            for decode in (decode_bt00, decode_bt52, decode_serial):
                try:
                    decode(rest)
                except ProtocolError:
                    pass
            dims = decode_bt21(rest[:12])
            for table in (decode_bt22, decode_bt23, decode_bt27, decode_bt28):
                try:
                    table(rest[12:], dims)
                except ProtocolError:
                    pass
    except ProtocolError:
        pass


if __name__ == "__main__":
    run("mep", one_input, seeded(0, guide_messages()) + seeded(1, [RESPONSE[2:-8]]) + seeded(2, [RESPONSE[5:-8]]))
