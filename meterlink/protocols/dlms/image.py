"""The values of the image transfer class (class 18; seed 002 ch. 3.8, DLMS Blue Book 4.4.6).

Attributes 2-7 and methods 1-4 of 0.0.44.0.0.255, the parameters of the methods, the block status
bit-string (bit n is block n, the first bit the most significant of the first byte) and the
image_to_activate_info array. Both the client (machines.image_transfer) and the simulated meter
build and read them here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..obis import Obis
from .axdr import BitString, Data, DataTag, encode_length, octet_string, structure
from .objects import IMAGE_TRANSFER, AttributeRef, ObjectError
from .xdlms import MethodDescriptor

IMAGE_TRANSFER_OBIS = Obis(0, 0, 44, 0, 0, 255)

BLOCK_SIZE, BLOCKS_STATUS, FIRST_NOT_TRANSFERRED, ENABLED, STATUS, TO_ACTIVATE = 2, 3, 4, 5, 6, 7
INITIATE, BLOCK_TRANSFER, VERIFY, ACTIVATE = 1, 2, 3, 4

ACTION_HEAD = 3 + 9 + 1
"""C3 01 invoke, the method descriptor (class 2, name 6, method 1), the parameters flag."""


class ImageError(ObjectError):
    """An image transfer attribute whose value is not what class 18 defines."""


class TransferStatus(enum.IntEnum):
    """image_transfer_status (attribute 6)."""

    NOT_INITIATED = 0
    INITIATED = 1
    VERIFICATION_INITIATED = 2
    VERIFICATION_SUCCESSFUL = 3
    VERIFICATION_FAILED = 4
    ACTIVATION_INITIATED = 5
    ACTIVATION_SUCCESSFUL = 6
    ACTIVATION_FAILED = 7


def attribute(index: int, obis: Obis = IMAGE_TRANSFER_OBIS) -> AttributeRef:
    return AttributeRef(IMAGE_TRANSFER, obis, index)


def method(index: int, obis: Obis = IMAGE_TRANSFER_OBIS) -> MethodDescriptor:
    return MethodDescriptor(IMAGE_TRANSFER, obis, index)


def u32(value: int) -> Data:
    return Data(DataTag.DOUBLE_LONG_UNSIGNED, value)


def initiate_parameters(identifier: bytes, size: int) -> Data:
    """image_transfer_initiate: structure {image_identifier, image_size}."""
    return structure(octet_string(identifier), u32(size))


def block_parameters(number: int, block: bytes) -> Data:
    """image_block_transfer: structure {image_block_number, image_block_value}."""
    return structure(u32(number), octet_string(block))


def block_request_size(block_size: int) -> int:
    """Bytes of the ACTION-request APDU that carries one block of `block_size` bytes."""
    return ACTION_HEAD + 2 + 5 + 1 + len(encode_length(block_size)) + block_size


def block_count(size: int, block_size: int) -> int:
    return math.ceil(size / block_size) if block_size > 0 else 0


def blocks_status(transferred: Iterable[int], count: int) -> Data:
    """image_transferred_blocks_status of `count` blocks with the `transferred` ones set."""
    data = bytearray((count + 7) // 8)
    for number in transferred:
        data[number // 8] |= 0x80 >> (number % 8)
    return Data(DataTag.BIT_STRING, BitString(count, bytes(data)))


def transferred_blocks(value: Data) -> tuple[int, frozenset[int]]:
    """The block count and the blocks set in an image_transferred_blocks_status value."""
    if value.tag is not DataTag.BIT_STRING or not isinstance(value.value, BitString):
        raise ImageError(f"image_transferred_blocks_status: expected a bit-string, got {value.tag.name.lower()}")
    bits, data = value.value.bits, value.value.data
    if len(data) * 8 < bits:
        raise ImageError(f"image_transferred_blocks_status: {bits} bits in {len(data)} bytes")
    return bits, frozenset(n for n in range(bits) if data[n // 8] & (0x80 >> (n % 8)))


def unsigned(value: Data, what: str) -> int:
    if value.tag not in (DataTag.DOUBLE_LONG_UNSIGNED, DataTag.LONG_UNSIGNED, DataTag.UNSIGNED) or not isinstance(value.value, int):
        raise ImageError(f"{what}: expected an unsigned integer, got {value.tag.name.lower()}")
    return value.value


def status(value: Data) -> TransferStatus:
    if value.tag is not DataTag.ENUM or value.value not in TransferStatus._value2member_map_:
        raise ImageError(f"image_transfer_status: expected an enum 0-7, got {value.tag.name.lower()} {value.value!r}")
    return TransferStatus(value.value)


def enabled(value: Data) -> bool:
    if value.tag is not DataTag.BOOLEAN:
        raise ImageError(f"image_transfer_enabled: expected a boolean, got {value.tag.name.lower()}")
    return bool(value.value)


@dataclass(frozen=True, slots=True)
class ImageToActivate:
    """One element of image_to_activate_info (attribute 7): what the meter verified and will activate."""

    size: int
    identification: bytes
    signature: bytes

    def to_data(self) -> Data:
        return structure(u32(self.size), octet_string(self.identification), octet_string(self.signature))


def images_to_activate(value: Data) -> tuple[ImageToActivate, ...]:
    """image_to_activate_info: an array of {size, identification, signature}."""
    if value.tag is not DataTag.ARRAY:
        raise ImageError(f"image_to_activate_info: expected an array, got {value.tag.name.lower()}")
    images = []
    for number, element in enumerate(value.value):
        fields = element.value if element.tag is DataTag.STRUCTURE else ()
        if len(fields) != 3 or any(f.tag is not DataTag.OCTET_STRING for f in fields[1:]):
            raise ImageError(f"image_to_activate_info element {number}: expected {{size, identification, signature}}")
        images.append(ImageToActivate(unsigned(fields[0], f"image_to_activate_info element {number} size"),
                                      fields[1].value, fields[2].value))
    return tuple(images)
