"""atheris harness: OMS / EN 13757-3 application layer and records (Netz OÖ AMIS, wmbusmeters).

Modes: 0 the input as an APDU (CI on) decoded with the AMIS key; 1 the input as records, encrypted
in mode 5 with the AMIS key into the AMIS telegram's header, so that mutations reach the record
parser (the key must then always be found right); 2 parse_records on the input.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.protocols.dlms.security import CipherKeys
    from meterlink.protocols.errors import ProtocolError
    from meterlink.protocols.mbus_app import parse_records, parse_transport
    from meterlink.protocols.oms import decode_oms_push
    from test_fuzz_repaired import AMIS, AMIS_FRAME, KEY_OUTCOMES, with_records
    from test_oms_codec import PLAINTEXTS

KEY = bytes.fromhex(AMIS["key"])
APDU = bytes((AMIS_FRAME.ci,)) + AMIS_FRAME.data
ADDRESS = parse_transport(APDU).address


def one_input(data: bytes) -> None:
    which, rest = mode(data, 3)
    if which == 0:
        decode_oms_push(rest, [CipherKeys(KEY)], "mbus", 1.0)
    elif which == 1:
        result = decode_oms_push(with_records(APDU, ADDRESS, KEY, rest[:4000]), [CipherKeys(KEY)], "mbus", 1.0)
        assert result.outcome not in KEY_OUTCOMES, result.detail
    else:
        try:
            parse_records(rest)
        except ProtocolError:
            pass


if __name__ == "__main__":
    run("oms", one_input, seeded(0, [APDU]) + seeded(1, [p[2:] for p in PLAINTEXTS]) + seeded(2, PLAINTEXTS))
