"""OCMF strings of the BSM-WS36A's OCMF models (seed 004 ch. 10.3, 17.3).

An OCMF string is `OCMF|<payload JSON>|<signature JSON>`; the signature JSON names the algorithm
(`SA`, the BSM's is ECDSA-secp256r1-SHA256) and carries the DER signature as hex (`SD`) over the
payload's bytes exactly as sent. The meter escapes `|` inside metadata (appendix B), so the payload
is what lies between the first and the last bar.

The meta format that joins a session's start and end for a transparency software is left by the
seed to bsm-python's examples; `transparency_xml` builds the one they document, the S.A.F.E.
XML envelope of doc/examples/ocmf.md, and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .bsm import load_public_key
from .errors import ProtocolError

SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"


class OcmfError(ProtocolError):
    """Text that is not an OCMF string the BSM writes."""


@dataclass(frozen=True, slots=True)
class Ocmf:
    """One OCMF string: the payload as sent (its bytes are what is signed), parsed, and the signature."""

    payload_text: str
    payload: dict[str, Any]
    algorithm: str
    signature: bytes

    def verify(self, public_key: bytes) -> bool:
        """Whether the signature holds for the payload under `public_key` (DER)."""
        if self.algorithm != SIGNATURE_ALGORITHM:
            raise OcmfError(f"signature algorithm {self.algorithm!r}: only {SIGNATURE_ALGORITHM} is supported")
        key = load_public_key(public_key)
        try:
            key.verify(self.signature, self.payload_text.encode("utf-8", "surrogateescape"), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_ocmf(text: str) -> Ocmf:
    """Split and parse an OCMF string (trailing NUL padding of the register range removed)."""
    text = text.rstrip("\0").strip()
    if not text.startswith("OCMF|"):
        raise OcmfError("an OCMF string starts with 'OCMF|'")
    last = text.rfind("|")
    if last <= 4:
        raise OcmfError("OCMF: no '|' before the signature section")
    payload_text, signature_text = text[5:last], text[last + 1:]
    payload = _object(payload_text, "payload")
    signature = _object(signature_text, "signature section")
    algorithm, data = signature.get("SA", SIGNATURE_ALGORITHM), signature.get("SD")
    if not isinstance(algorithm, str) or not isinstance(data, str):
        raise OcmfError("OCMF signature section: SA and SD are strings")
    if signature.get("SE", "hex") != "hex":
        raise OcmfError(f"OCMF signature encoding {signature.get('SE')!r}: the BSM writes hex")
    try:
        signature_bytes = bytes.fromhex(data)
    except ValueError:
        raise OcmfError("OCMF signature SD: not hex") from None
    return Ocmf(payload_text, payload, algorithm, signature_bytes)


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise OcmfError(f"OCMF {what}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise OcmfError(f"OCMF {what}: not a JSON object")
    return value


def transparency_xml(begin: str, end: str, public_key: bytes, transaction_id: int = 1) -> str:
    """The XML envelope bsm-python documents for the S.A.F.E. transparency software: the OCMF of
    the session's start (turn-on or start snapshot) and end, each with the meter's public key."""
    def value(context: str, ocmf: str) -> str:
        return (f'  <value transactionId="{transaction_id}" context="{context}">\n'
                f'    <signedData format="OCMF" encoding="plain">{escape(ocmf)}</signedData>\n'
                f'    <publicKey encoding="plain">{public_key.hex()}</publicKey>\n'
                f'  </value>\n')

    return ('<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>\n<values>\n'
            + value("Transaction.Begin", begin) + value("Transaction.End", end) + "</values>\n")
