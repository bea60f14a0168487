"""Table-driven CRCs shared by the codecs."""


def _reflected_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_ARC = _reflected_table(0xA001)
_X25 = _reflected_table(0x8408)


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0, no final xor), the P1 telegram CRC (DSMR P1 5.0.2 ch. 6.2)."""
    crc = 0
    table = _ARC
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_x25(data: bytes) -> int:
    """CRC-16/X.25 (poly 0x1021 reflected, init and final xor 0xFFFF), the HDLC HCS and FCS
    (IEC 62056-46 ch. 6.4.3.6, seed 002 ch. 2.6.4)."""
    crc = 0xFFFF
    table = _X25
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF
