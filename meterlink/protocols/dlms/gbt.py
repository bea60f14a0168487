"""General-block-transfer (DLMS UA Green Book 9.3.5 and 9.5: the APDU [224], 0xE0).

`E0 <block-control> <block-number(2)> <block-number-ack(2)> <length> <block-data>`. Block control:
bit 7 marks the last block, bit 6 streaming, bits 0-5 the window. Block numbers start at 1; the
block data of all blocks, joined, is one APDU (a pushing L+G E450 sends a general-glo-ciphering
APDU in 2 blocks, each in its own HDLC frame: `E0 40 0001 0000 77 DB 08 ...`, `E0 C0 0002 0000 ...`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProtocolError
from .axdr import AxdrError, decode_length, encode_length

GENERAL_BLOCK_TRANSFER = 0xE0
LAST_BLOCK = 0x80
STREAMING = 0x40
_HEADER = 6  # tag, block control, block number, block number ack


class BlockTransferError(ProtocolError):
    """A general-block-transfer APDU that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    last: bool
    data: bytes

    def to_bytes(self) -> bytes:
        """As a pushing meter streams it: streaming set, window and block-number-ack 0."""
        control = STREAMING | (LAST_BLOCK if self.last else 0)
        return (bytes((GENERAL_BLOCK_TRANSFER, control)) + self.number.to_bytes(2, "big") + bytes(2)
                + encode_length(len(self.data)) + self.data)


def parse_block(apdu: bytes) -> Block:
    if len(apdu) < _HEADER + 1 or apdu[0] != GENERAL_BLOCK_TRANSFER:
        raise BlockTransferError(f"general-block-transfer: {len(apdu)} bytes starting {apdu[:1].hex() or 'nothing'}, "
                                 f"expected E0 and at least {_HEADER + 1} bytes")
    number = int.from_bytes(apdu[2:4], "big")
    try:
        length, offset = decode_length(apdu, _HEADER)
    except AxdrError as error:
        raise BlockTransferError(f"general-block-transfer block {number}: {error}") from None
    if offset + length != len(apdu):
        raise BlockTransferError(f"general-block-transfer block {number}: block data of {length} bytes stated, "
                                 f"{len(apdu) - offset} follow")
    return Block(number, bool(apdu[1] & LAST_BLOCK), bytes(apdu[offset:]))


def split_blocks(apdu: bytes, size: int) -> list[Block]:
    """`apdu` in blocks of at most `size` bytes of data, numbered from 1 (the meter's side)."""
    if size < 1:
        raise BlockTransferError(f"general-block-transfer: block size {size}, at least 1")
    chunks = [apdu[i : i + size] for i in range(0, len(apdu), size)] or [b""]
    return [Block(number, number == len(chunks), chunk) for number, chunk in enumerate(chunks, start=1)]
