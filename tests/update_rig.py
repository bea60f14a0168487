"""Stand-ins for the update tests: tiny meterlink wheels, signed bundles, an adapter's update layout,
a test CA and a small HTTPS server on trio.

The wheels are real (pip installs them offline) but hold one module, `meterlink/__init__.py` with
`RELEASE = "VERSION"`, so installing one takes a second, not the minutes a full meterlink would.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import json
import ssl
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meterlink.service.release import Host, sign_bundle, write_bundle
from meterlink.service.update import MARKER, UpdatePaths

DATA = Path(__file__).parent / "data" / "update"
KEY = DATA / "test_release_key.pem"
"""TEST ONLY (tests/data/README.md)."""
PUBLIC_KEY = DATA / "test_release_key.pub.pem"
OTHER_KEY = DATA / "other_key.pem"
HOST = Host.this()


def tiny_wheel(directory: Path, version: str) -> Path:
    """A valid pure-Python wheel named meterlink whose only module says which release it is."""
    name = f"meterlink-{version}-py3-none-any.whl"
    dist = f"meterlink-{version}.dist-info"
    files = {
        "meterlink/__init__.py": f'RELEASE = "{version}"\n'.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: meterlink\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: meterlink-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
              for path, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join(record + [f"{dist}/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / name, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return directory / name


def bundle(directory: Path, version: str, key: Path | None = KEY, platform: str | None = None,
           python: str | None = None, padding: int = 0) -> Path:
    """A bundle of one tiny wheel (and `padding` bytes of a second file, for size limits), signed by `key`."""
    wheels = [tiny_wheel(directory / f"wheels-{version}", version)]
    if padding:
        extra = directory / f"wheels-{version}" / "padding-1.0-py3-none-any.whl"
        extra.write_bytes(b"\0" * padding)
        wheels.append(extra)
    out = directory / f"{version}-{platform or 'host'}-{key.stem if key else 'unsigned'}"
    path = write_bundle(out, wheels, version, platform or f"linux_{HOST.machine}", python or HOST.python)
    if key is not None:
        sign_bundle(path, key)
    return path


def tampered(original: Path, directory: Path) -> Path:
    """The signed bundle with one byte of its wheel changed: the manifest's hash no longer holds."""
    with tarfile.open(original) as source:
        members = [(member, source.extractfile(member).read()) for member in source.getmembers()]  # type: ignore[union-attr]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("tampered-" + original.name)
    with tarfile.open(path, "w") as out:
        for member, data in members:
            if member.name.endswith(".whl"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.addfile(member, io.BytesIO(data))
    return path


def manifest_digest(path: Path) -> str:
    with tarfile.open(path) as source:
        return hashlib.sha256(source.extractfile("manifest.json").read()).hexdigest()  # type: ignore[union-attr]


def adapter_layout(root: Path) -> UpdatePaths:
    """The state directory, a base release with a bin/ (as install.sh leaves it), the trusted test key."""
    base = root / "opt" / "venv"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "meterlink").write_text("#!/bin/sh\n")
    keys = root / "update-keys"
    keys.mkdir()
    (keys / "test.pem").write_bytes(PUBLIC_KEY.read_bytes())
    (root / "certs").mkdir()
    state = root / "state"
    state.mkdir()
    return UpdatePaths(state, base, keys, root / "certs")


def release_marker(paths: UpdatePaths, release: Path) -> dict[str, object] | None:
    try:
        return json.loads((release / MARKER).read_text())
    except OSError:
        return None


# --- a test CA and an HTTPS server ------------------------------------------------------------------


@dataclass
class TestCA:
    cert_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes

    def server_context(self, directory: Path) -> ssl.SSLContext:
        (directory / "server.pem").write_bytes(self.server_cert_pem + self.server_key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "server.pem")
        return context


def make_ca() -> TestCA:
    """A CA and a server certificate for 127.0.0.1 and localhost, made fresh for each test run."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meterlink test CA (test only)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    return TestCA(ca.public_bytes(serialization.Encoding.PEM), server.public_bytes(serialization.Encoding.PEM),
                  key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))


Route = Callable[[], tuple[bytes, int | None]]
"""A path's body and the Content-Length to announce (None: the body's own)."""


async def serve_files(stream: trio.abc.Stream, routes: dict[str, Route]) -> None:
    """One HTTP/1.1 GET: the route's body, or 404; a Content-Length larger than the body cuts it short."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return
        request += chunk
    path = request.split(b" ")[1].decode()
    if path not in routes:
        await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        body, length = routes[path]()
        await stream.send_all(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) if length is None else length}\r\n"
                              f"Connection: close\r\n\r\n".encode() + body)
    await stream.aclose()
