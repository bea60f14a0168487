"""atheris harness: the M-Bus framer and adapter (Kaifa/Sagemcom long frames, joined, decrypted).

Mode 0 feeds the input as a byte stream; mode 1 takes it as a data-notification plaintext,
encrypts it as the EVN Kaifa capture's meter does (its key, system title and frame counter, with a
tag) and splits it into long frames with right checksums, so that mutations reach the A-XDR parser
and the push mapping; mode 2 feeds the stream to an OMS (Netz OÖ AMIS) link.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.protocols.dlms.security import CipherKeys
    from meterlink.protocols.mbus import split_segments
    from test_fuzz_repaired import AMIS, MBUS_KEYS, MBUS_STREAMS, push_plaintext, reencrypted, run_mbus

CAPTURE = "kaifa_mbus_evn_netznoe_doc"
AMIS_KEYS = [CipherKeys(bytes.fromhex(AMIS["key"]))]


def one_input(data: bytes) -> None:
    which, rest = mode(data, 3)
    if which == 0:
        run_mbus(rest, [], MBUS_KEYS)
    elif which == 1:
        apdu, keys = reencrypted(CAPTURE, rest[:3000], tagged=True)
        run_mbus(b"".join(split_segments(apdu, 0x53, 0xFF)), [], [keys])
    else:
        run_mbus(rest, [], AMIS_KEYS, payload="oms")


if __name__ == "__main__":
    run("mbus", one_input, seeded(0, MBUS_STREAMS) + seeded(1, [push_plaintext(CAPTURE)])
        + seeded(2, [bytes.fromhex(AMIS["frame_hex"])]))
