"""atheris harness: SunSpec/Modbus RTU (BSM-WS36A), signed snapshots and OCMF.

Modes: 0 the Modbus RTU client fed the input; 1 the same with the right CRC appended, so that
mutations reach pymodbus's PDU decoder and ours; 2 the input as registers of the signed snapshot
model (decoded and verified); 3 the input as an OCMF string (parsed and verified). Seeds: bsmtool's
frames, the snapshot dump and the OCMF strings of tests/data.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    from common import mode, run, seeded
    from meterlink.protocols.bsm import decode_snapshot
    from meterlink.protocols.errors import ProtocolError
    from meterlink.protocols.ocmf import parse_ocmf
    from meterlink.protocols.sunspec import ModbusRtuClient, ModelInstance
    from mutations import modbus_crc, strict_json
    from bsm_data import PUBLIC_KEY, SCS_INSTANCE, SIGNED, scs_frames, scs_registers


def one_input(data: bytes) -> None:
    which, rest = mode(data, 4)
    try:
        if which == 0:
            ModbusRtuClient(42).feed(rest)
        elif which == 1:
            ModbusRtuClient(42).feed(modbus_crc(rest))
        elif which == 2:
            registers = [int.from_bytes(rest[n:n + 2], "big") for n in range(0, len(rest) - 1, 2)]
            snapshot = decode_snapshot(ModelInstance(SCS_INSTANCE.address, 64901, max(len(registers) - 2, 0)),
                                       registers, PUBLIC_KEY)
            snapshot.verify()
            strict_json(snapshot.to_json())
        else:
            parse_ocmf(rest.decode("utf-8", "surrogateescape")).verify(PUBLIC_KEY)
    except ProtocolError:
        pass


if __name__ == "__main__":
    frames = [frame for _, frame in scs_frames()]
    registers = b"".join(r.to_bytes(2, "big") for r in scs_registers())
    run("bsm", one_input, seeded(0, frames) + seeded(1, [f[:-2] for f in frames]) + seeded(2, [registers])
        + seeded(3, [text.encode() for text in SIGNED["ocmf"].values()]))
