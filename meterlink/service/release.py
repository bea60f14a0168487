"""Release bundles: what `meterlink release build` makes, `release sign` signs and an update checks.

A bundle is one uncompressed tar file (wheels are compressed already), so a browser can upload it
to /ota and firmware_update can fetch it with one URL:

    manifest.json    name, version, platform tag, Python version, the requirement to install,
                     and the size and SHA-256 of every other file
    manifest.sig     detached Ed25519 signature of manifest.json's exact bytes (`release sign`)
    wheels/*.whl     meterlink's own wheel and every wheel it needs, for the target platform

Signing the manifest signs every file through its hash. A bundle is usable only when it is
signed by a key in the trusted directory, every file is listed with its hash and nothing else is
in it, and its platform and Python are this adapter's.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform as host_platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT = 1
MANIFEST_LIMIT = 1024 * 1024
WHEEL_PATH = re.compile(r"wheels/[A-Za-z0-9_.+-]+\.whl")
CHUNK = 64 * 1024

Opener = Callable[[Path], BinaryIO]
"""Opens a file for writing; tests pass one that fails with ENOSPC."""


class BundleError(Exception):
    """The bundle cannot be used; the message says what is wrong (never key material)."""


@dataclass(frozen=True)
class BundleFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    platform: str
    """A wheel platform tag (manylinux2014_aarch64, linux_armv7l, linux_x86_64) or `any`."""
    python: str
    """major.minor of the Python the wheels are for."""
    requirement: str
    """What pip installs from the bundle's wheels: `meterlink==VERSION`."""
    files: tuple[BundleFile, ...]
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise BundleError(f"manifest format {document.get('format')!r} is not {FORMAT}")
            files = tuple(BundleFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in document["files"])
            manifest = cls(str(document["name"]), str(document["version"]), str(document["platform"]),
                           str(document["python"]), str(document["requirement"]), files)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise BundleError(f"the manifest cannot be read ({type(error).__name__})") from None
        if manifest.name != "meterlink":
            raise BundleError(f"the bundle is of {manifest.name!r}, not meterlink")
        if not re.fullmatch(r"[0-9A-Za-z.+!_-]{1,64}", manifest.version):
            raise BundleError("the manifest's version is not a version")
        for entry in files:
            if not WHEEL_PATH.fullmatch(entry.path):
                raise BundleError(f"the manifest lists {entry.path!r}: only wheels/NAME.whl may be in a bundle")
        if len({entry.path for entry in files}) != len(files):
            raise BundleError("the manifest lists a file twice")
        return manifest

    @property
    def digest(self) -> str:
        """The SHA-256 of the manifest as signed: it names this release's contents."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


@dataclass(frozen=True)
class Host:
    """What a bundle must be built for to run here."""

    machine: str
    python: str

    @classmethod
    def this(cls) -> Host:
        return cls(host_platform.machine(), f"{sys.version_info.major}.{sys.version_info.minor}")

    def refuses(self, manifest: Manifest) -> str | None:
        """Why the bundle cannot run here, or None."""
        if manifest.platform != "any" and not manifest.platform.endswith("_" + self.machine):
            return f"the bundle is for {manifest.platform}, this adapter is {self.machine}"
        if manifest.python != self.python:
            return f"the bundle is for Python {manifest.python}, this adapter runs {self.python}"
        return None


def host_platform_tag() -> str:
    """This machine's wheel platform tag, as `pip download` without --platform fetches for."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


# --- build and sign ----------------------------------------------------------------------------------


def file_entry(path: Path, name: str) -> BundleFile:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return BundleFile(name, size, digest.hexdigest())


def write_bundle(out: Path, wheels: list[Path], version: str, platform: str, python: str) -> Path:
    """Pack the wheels and their manifest into `out`/meterlink-VERSION-PLATFORM.tar."""
    files = tuple(sorted((file_entry(wheel, f"wheels/{wheel.name}") for wheel in wheels), key=lambda f: f.path))
    manifest = Manifest("meterlink", version, platform, python, f"meterlink=={version}", files)
    Manifest.from_bytes(manifest.to_bytes())  # the same checks an install makes
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"meterlink-{version}-{platform}.tar"
    with tarfile.open(bundle, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, manifest.to_bytes())
        for wheel in sorted(wheels, key=lambda w: w.name):
            tar.add(wheel, f"wheels/{wheel.name}", recursive=False, filter=_plain)
    return bundle


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _plain(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def collect_wheels(source: Path, work: Path, platform: str | None, python: str, find_links: Path | None) -> list[Path]:
    """meterlink's wheel built from the checkout `source`, and the wheels it needs, fetched with pip
    for `platform` (None: this machine) and `python`; from `find_links` only, without an index, when given
    (the build backend too).
    Raises BundleError naming pip's last line."""
    own, deps = work / "own", work / "deps"
    # pip builds in the tree it is given: a copy leaves no build/ or *.egg-info in the checkout, and
    # no stale build/ of an earlier run can carry deleted modules into the wheel.
    source = Path(shutil.copytree(source, work / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis")))
    # The build backend (setuptools) comes from the same place as the wheels: an index, or find_links.
    index = ["--no-index", "--find-links", str(find_links)] if find_links is not None else []
    _pip("wheel", "--no-deps", "--wheel-dir", str(own), *index, str(source.resolve()))
    built = sorted(own.glob("meterlink-*.whl"))
    if len(built) != 1:
        raise BundleError(f"pip wheel made {len(built)} meterlink wheels")
    options = ["--only-binary=:all:", "--dest", str(deps), "--python-version", python]
    if platform is not None:
        options += ["--platform", platform, "--implementation", "cp"]
    _pip("download", *options, *index, str(built[0]))
    wheels = {wheel.name: wheel for wheel in deps.glob("*.whl")}
    wheels[built[0].name] = built[0]
    return [wheels[name] for name in sorted(wheels)]


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise BundleError(f"pip {args[0]} failed: {lines[-1].strip() if lines else f'exit {done.returncode}'}")


def sign_bundle(bundle: Path, key_file: Path) -> None:
    """Append manifest.sig, the Ed25519 signature of the bundle's manifest, made with the PEM private key."""
    try:
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except OSError as error:
        raise BundleError(f"{key_file}: cannot read: {error.strerror}") from None
    except (ValueError, TypeError):
        raise BundleError(f"{key_file}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{key_file}: not an Ed25519 key")
    try:
        with tarfile.open(bundle, "r:") as tar:
            names = tar.getnames()
            if SIGNATURE in names:
                raise BundleError(f"{bundle} is signed already")
            manifest = _member_bytes(tar, MANIFEST, MANIFEST_LIMIT)
        with tarfile.open(bundle, "a:", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, SIGNATURE, key.sign(manifest))
    except (OSError, tarfile.TarError) as error:
        raise BundleError(f"{bundle}: not a bundle ({error})") from None


# --- check and unpack ---------------------------------------------------------------------------------


def trusted_keys(directory: Path) -> list[Ed25519PublicKey]:
    """The Ed25519 public keys (PEM, *.pem) in `directory`; others are ignored."""
    keys = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
    return keys


def verify_bundle(bundle: Path, keys: list[Ed25519PublicKey], host: Host) -> Manifest:
    """The manifest of a bundle signed by one of `keys` whose files are exactly those listed, each of
    its size and hash, built for `host`; else BundleError."""
    if not keys:
        raise BundleError("no trusted update key is installed: every bundle is refused")
    try:
        with tarfile.open(bundle, "r:") as tar:
            members = tar.getmembers()
            names = [member.name for member in members]
            if len(set(names)) != len(names):
                raise BundleError("a file is in the bundle twice")
            if any(not member.isreg() for member in members):
                raise BundleError("the bundle holds something that is not a plain file")
            if MANIFEST not in names:
                raise BundleError("not a meterlink bundle: it has no manifest.json")
            if SIGNATURE not in names:
                raise BundleError("the bundle is not signed")
            manifest_bytes = _member_bytes(tar, MANIFEST, MANIFEST_LIMIT)
            signature = _member_bytes(tar, SIGNATURE, 1024)
            if not any(_valid(key, signature, manifest_bytes) for key in keys):
                raise BundleError("the signature is not that of a trusted key")
            manifest = Manifest.from_bytes(manifest_bytes)
            listed = {entry.path for entry in manifest.files}
            extra = sorted(set(names) - listed - {MANIFEST, SIGNATURE})
            if extra:
                raise BundleError(f"{extra[0]} is in the bundle but not in its manifest")
            missing = sorted(listed - set(names))
            if missing:
                raise BundleError(f"{missing[0]} is in the manifest but not in the bundle")
            for entry in manifest.files:
                _check_member(tar, entry, lambda chunk: None)
    except (OSError, tarfile.TarError, EOFError) as error:
        raise BundleError(f"the bundle cannot be read ({type(error).__name__})") from None
    refused = host.refuses(manifest)
    if refused:
        raise BundleError(refused)
    return manifest


def unpack_wheels(bundle: Path, manifest: Manifest, dest: Path, opener: Opener) -> None:
    """Write the bundle's wheels into `dest`, checking each one's hash again as it is written."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(bundle, "r:") as tar:
        for entry in manifest.files:
            with opener(dest / Path(entry.path).name) as out:
                _check_member(tar, entry, out.write)
                out.flush()


def _check_member(tar: tarfile.TarFile, entry: BundleFile, sink: Callable[[bytes], object]) -> None:
    source = tar.extractfile(entry.path)
    assert source is not None  # a regular file, checked by the caller
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if size > entry.size:
            break
        digest.update(chunk)
        sink(chunk)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise BundleError(f"{entry.path} does not match the hash in the manifest")


def _member_bytes(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    member = tar.getmember(name)
    if member.size > limit:
        raise BundleError(f"{name} is larger than {limit} bytes")
    source = tar.extractfile(member)
    if source is None:
        raise BundleError(f"{name} is not a plain file")
    return source.read()


def _valid(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
