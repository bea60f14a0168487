"""Any APDU of the HDLC/wrapper DLMS link, by its first byte: the association service (AARQ, AARE,
RLRQ, RLRE), confirmed-service-error and the xDLMS services (GET, SET, ACTION, exception)."""

from __future__ import annotations

from ..errors import ProtocolError
from .acse import AARE, AARQ, CONFIRMED_SERVICE_ERROR, RLRE, RLRQ, Aare, Aarq, ConfirmedServiceError, ReleaseRequest, ReleaseResponse
from .xdlms import Xdlms, parse_xdlms

Apdu = Aarq | Aare | ReleaseRequest | ReleaseResponse | ConfirmedServiceError | Xdlms

_ACSE = {AARQ: Aarq.parse, AARE: Aare.parse, RLRQ: ReleaseRequest.parse, RLRE: ReleaseResponse.parse,
         CONFIRMED_SERVICE_ERROR: ConfirmedServiceError.parse}


class ApduError(ProtocolError):
    """An APDU this link does not know."""


def parse_apdu(apdu: bytes) -> Apdu:
    """Decode one APDU; ProtocolError (a subclass naming the APDU) when it is malformed."""
    if not apdu:
        raise ApduError("APDU: empty")
    parser = _ACSE.get(apdu[0])
    if parser is not None:
        return parser(apdu)
    if apdu[0] in (0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7, 0xD8):
        return parse_xdlms(apdu)
    raise ApduError(f"APDU: tag 0x{apdu[0]:02X} is not one of this link's (AARQ/AARE/RLRQ/RLRE, GET/SET/ACTION)")
