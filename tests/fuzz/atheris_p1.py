"""atheris harness: the P1 framer and reader, plain (DSMR/e-MUCs telegrams, tests/data/*p1*.txt).

Mode 0 feeds the input as it is; mode 1 takes it as a telegram body up to `!` and appends the right
CRC-16 first, so that mutations reach the line parser. Only ProtocolError may escape a decoder;
the reader takes everything; each reading is strict JSON.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.machines.base import Publish
    from meterlink.machines.p1 import P1Reader
    from meterlink.protocols.p1 import P1Framer
    from mutations import strict_json, with_crc
    from test_p1_tolerant_fuzz import BODIES, SEEDS


def one_input(data: bytes) -> None:
    which, rest = mode(data, 2)
    reader = P1Reader(legacy=True)
    for event in P1Framer().feed(with_crc(rest) if which else rest):
        reader.handle(event, 1.0)
    for action in reader.take_actions():
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())


if __name__ == "__main__":
    run("p1", one_input, seeded(0, [path.read_bytes() for path in SEEDS]) + seeded(1, BODIES))
