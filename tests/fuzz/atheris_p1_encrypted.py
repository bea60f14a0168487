"""atheris harness: encrypted P1 (general-glo-ciphering, the Luxembourg Smarty capture).

Mode 0 feeds the input to the framer and reader as it is; mode 1 takes it as the plaintext telegram
and encrypts it with the capture's key and published AK (AES-GCM, the capture's system title and
frame counter), so that mutations get past the tag into the telegram parser; the key must then
always be found right.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.machines.base import Publish
    from meterlink.machines.p1 import P1Reader
    from meterlink.protocols.dlms.push import Outcome
    from meterlink.protocols.dlms.security import encrypt, parse_ciphered
    from meterlink.protocols.p1 import P1Framer
    from meterlink.protocols.p1_encrypted import decrypt_telegram
    from mutations import strict_json
    from test_fuzz_repaired import SMARTY_APDU, SMARTY_KEYS, SMARTY_TEXT

CIPHERED = parse_ciphered(SMARTY_APDU)


def one_input(data: bytes) -> None:
    which, rest = mode(data, 2)
    if which:
        rest = encrypt(rest, CIPHERED.system_title, CIPHERED.frame_counter, SMARTY_KEYS.encryption, 0x30,
                       SMARTY_KEYS.authentication)
        result = decrypt_telegram(rest, [SMARTY_KEYS])
        assert result.outcome in (Outcome.DECODED, Outcome.UNSUPPORTED_LAYOUT), result.detail
    reader = P1Reader(keys=lambda: [SMARTY_KEYS])
    for event in P1Framer().feed(rest):
        reader.handle(event, 1.0)
    for action in reader.take_actions():
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())


if __name__ == "__main__":
    run("p1_encrypted", one_input, seeded(0, [SMARTY_APDU]) + seeded(1, [SMARTY_TEXT]))
