"""Meter keys, the device password and login throttling.

Seed 001 ch. C.1 (security): a meter-specific key can be stored, keys can be exchanged at any time
(with the old key or by a hybrid procedure), configuration is password protected, and no key is
kept in plain text. So meter keys are stored encrypted under a device key kept in a separate 0600
file, the password is stored only as a scrypt hash, and no key, password or token is ever put into
a log line, an exception message or a repr.

The calls here do small blocking file I/O, and `Credentials.check` costs one scrypt (tens of
milliseconds): call them from a worker thread (`trio.to_thread.run_sync`) where that matters.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import tempfile
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("meterlink.secrets")

METER_KEY_SIZE = 16
DEVICE_KEY_SIZE = 32
NONCE_SIZE = 12
STORE_AAD = b"meterlink keystore v1"
STORE_VERSION = 1
MIN_PASSWORD_LENGTH = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 2**20  # the default parameters need 16 MiB
SALT_SIZE = 16
HASH_SIZE = 32

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
_SEPARATORS = re.compile(r"[\s:]+")


class SecretsError(Exception):
    """Bad key material, or a key store or credentials file that cannot be used.

    The message names files and what is wrong with them, never key bytes or passwords.
    """


class KeyStoreUnreadable(SecretsError):
    """The key store's files cannot be used; the message says which file, what is wrong and what to do."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"key store unreadable: {problem}; meter_factreset clears it (the meter keys "
                         "must then be set again with meter_setkey)")


@dataclass(frozen=True, slots=True, repr=False)
class MeterKey:
    """An AES-128 key from the grid operator (seed 001 ch. C.1); its repr never shows the key."""

    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != METER_KEY_SIZE:
            raise SecretsError("meter key must be 16 bytes")

    @classmethod
    def from_hex(cls, text: str) -> MeterKey:
        """The key as a customer types it: 32 hex digits, spaces and colons allowed between them.

        The error never repeats the input, which may be a real key with one digit mistyped.
        """
        digits = _SEPARATORS.sub("", text) if isinstance(text, str) else ""
        if not _HEX_KEY.fullmatch(digits):
            raise SecretsError("meter key must be 32 hex digits (16 bytes)")
        return cls(bytes.fromhex(digits))

    def __repr__(self) -> str:
        return "MeterKey(****)"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """The keys a meter's telegrams are protected with: encryption key and optional authentication key."""

    encryption: MeterKey
    authentication: MeterKey | None = None


@dataclass(frozen=True, slots=True)
class _Slot:
    """One link's keys: the current pair, and a pending one during a hybrid change-over."""

    current: KeyPair
    pending: KeyPair | None = None


def meter_slot(link: str, meter_id: str) -> str:
    """The key store's name for the key of one meter of a link (a wireless M-Bus link hears many)."""
    return f"{link}/{meter_id.upper()}"


class KeyStore:
    """Meter keys per link name, encrypted at rest with AES-GCM under a device key kept in a separate 0600 file.

    Seed 001 ch. C.1: "no key in plain text". The store file is nonce(12) || AES-256-GCM(device
    key, JSON, aad=STORE_AAD) and is only ever replaced whole. Both files are read on first use
    rather than here, so that damaged files still let the adapter start, say what is wrong
    (`problem`) and allow `clear()` (the factory reset); every use raises `KeyStoreUnreadable`
    until then. Temporary files that a power cut or a SIGKILL left behind are removed here.
    """

    def __init__(self, path: Path, device_key_path: Path) -> None:
        self._path = Path(path)
        self._device_key_path = Path(device_key_path)
        self._aead: AESGCM | None = None
        self._loaded: dict[str, _Slot] | None = None
        remove_temporaries(self._path, self._device_key_path)

    def set_key(self, link: str, key: MeterKey, auth_key: MeterKey | None = None) -> None:
        """Store a link's key; if it has one already, the new one is pending until `confirm()`.

        This is the hybrid change-over of seed 001 ch. C.1: the key can be entered before the grid
        operator switches the meter, and both are tried until a telegram shows which one it uses.
        Entering the current key again cancels a pending change.
        """
        pair = KeyPair(key, auth_key)
        slots = self._slots()
        old = slots.get(link)
        if old is None:
            new, event = _Slot(pair), "stored"
        elif pair == old.current:
            new, event = _Slot(pair), "unchanged" if old.pending is None else "unchanged, pending change cancelled"
        else:
            new, event = _Slot(old.current, pair), "changed (pending)"
        self._save({**slots, link: new})
        log.info("meter key for link %s %s", link, event)

    def candidates(self, link: str) -> list[KeyPair]:
        """The keys to try on a telegram, in order: the pending pair first, then the current one."""
        slot = self._slots().get(link)
        if slot is None:
            return []
        return [slot.pending, slot.current] if slot.pending else [slot.current]

    def confirm(self, link: str, pair: KeyPair) -> None:
        """A telegram of `link` decrypted with `pair`.

        A pending pair becomes current and the old one is forgotten. The current pair confirms
        nothing: the meter keeps its old key until the operator switches it, so the pending one
        must stay. Called for every telegram, so it only writes when something changes (flash wear).
        """
        slot = self._slots().get(link)
        if slot is None or slot.pending is None or pair == slot.current:
            return
        if pair != slot.pending:
            # The keys were changed between candidates() and this call; never bring back a replaced key.
            log.info("meter key for link %s: ignored a confirmation for a key no longer stored", link)
            return
        self._save({**self._slots(), link: _Slot(pair)})
        log.info("meter key for link %s changed (confirmed by the meter, old key forgotten)", link)

    def has_key(self, link: str) -> bool:
        return link in self._slots()

    def links(self) -> list[str]:
        return sorted(self._slots())

    def problem(self) -> str | None:
        """Why the store cannot be used (naming the file and what to do), or None when it can."""
        try:
            self._slots()
        except KeyStoreUnreadable as error:
            return str(error)
        return None

    def clear(self) -> None:
        """Factory reset: forget every key, even when the store cannot be decrypted.

        The device key is replaced too: a copy of the old store, or a block of it that the flash
        has not erased yet, can then never be decrypted again.
        """
        try:
            _remove(self._path)
        except OSError as error:
            raise SecretsError(f"cannot remove key store {self._path}: {error.strerror}") from None
        remove_temporaries(self._path, self._device_key_path)
        key = AESGCM.generate_key(bit_length=DEVICE_KEY_SIZE * 8)
        try:
            _write_private(self._device_key_path, key)
        except OSError as error:
            raise SecretsError(f"cannot write device key file {self._device_key_path}: {error.strerror}") from None
        self._aead = AESGCM(key)
        self._loaded = {}
        log.info("key store cleared, device key replaced")

    def _slots(self) -> dict[str, _Slot]:
        if self._loaded is None:
            self._loaded = self._read()
        return self._loaded

    def _device_aead(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(self._device_key())
        return self._aead

    def _device_key(self) -> bytes:
        try:
            return _read_device_key(self._device_key_path)
        except FileNotFoundError:
            if self._path.exists():
                # A new device key would never decrypt the store: say so instead of hiding it.
                raise KeyStoreUnreadable(f"device key file {self._device_key_path} is missing, "
                                         f"so {self._path} cannot be decrypted") from None
        except OSError as error:
            raise KeyStoreUnreadable(f"cannot read device key file {self._device_key_path}: {error.strerror}") from None
        try:
            return _create_device_key(self._device_key_path)
        except OSError as error:
            raise KeyStoreUnreadable(f"cannot create device key file {self._device_key_path}: {error.strerror}") from None

    def _read(self) -> dict[str, _Slot]:
        aead = self._device_aead()
        try:
            blob = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise KeyStoreUnreadable(f"cannot read {self._path}: {error.strerror}") from None
        try:
            plaintext = aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], STORE_AAD)
        except (InvalidTag, ValueError):
            # ValueError: a file too short to hold a nonce.
            raise KeyStoreUnreadable(
                f"{self._path} cannot be decrypted with {self._device_key_path}: "
                "wrong device key, or the file was altered or truncated"
            ) from None
        slots = _parse_store(plaintext)
        if slots is None:
            raise KeyStoreUnreadable(f"{self._path} has unexpected content (written by another version?)")
        return slots

    def _save(self, slots: dict[str, _Slot]) -> None:
        """Encrypt and replace the store file; memory changes only once the file is written."""
        plaintext = json.dumps(
            {"version": STORE_VERSION, "links": {link: _slot_to_json(slot) for link, slot in slots.items()}}
        ).encode()
        nonce = os.urandom(NONCE_SIZE)
        blob = nonce + self._device_aead().encrypt(nonce, plaintext, STORE_AAD)
        try:
            _write_private(self._path, blob)
        except OSError as error:
            raise SecretsError(f"cannot write key store {self._path}: {error.strerror}") from None
        self._loaded = slots


def _pair_to_json(pair: KeyPair) -> dict[str, str | None]:
    auth = pair.authentication
    return {"encryption": pair.encryption.secret.hex(), "authentication": auth.secret.hex() if auth else None}


def _slot_to_json(slot: _Slot) -> dict[str, Any]:
    return {"current": _pair_to_json(slot.current), "pending": _pair_to_json(slot.pending) if slot.pending else None}


def _pair_from_json(obj: dict[str, Any]) -> KeyPair:
    auth = obj["authentication"]
    return KeyPair(MeterKey.from_hex(obj["encryption"]), MeterKey.from_hex(auth) if auth is not None else None)


def _parse_store(plaintext: bytes) -> dict[str, _Slot] | None:
    """The decrypted store, or None if it is not what `_save` writes.

    Returns None instead of raising so that no exception carrying the plaintext (json's
    JSONDecodeError keeps the whole document) ends up as the context of the SecretsError.
    """
    try:
        doc = json.loads(plaintext)
        if doc["version"] != STORE_VERSION:
            return None
        return {
            link: _Slot(_pair_from_json(s["current"]), _pair_from_json(s["pending"]) if s["pending"] else None)
            for link, s in doc["links"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError, SecretsError):
        return None


def _create_device_key(path: Path) -> bytes:
    """A new device key file, whole or not at all (a SIGKILL half-way leaves no short key), and
    never over an existing key or a symlink planted in its place: then that key is read instead."""
    key = AESGCM.generate_key(bit_length=DEVICE_KEY_SIZE * 8)
    try:
        _write_private(path, key, exclusive=True)
    except FileExistsError:
        return _read_device_key(path)
    log.info("created device key file %s", path)
    return key


def _read_device_key(path: Path) -> bytes:
    with path.open("rb") as f:
        # fstat on the open file: the mode checked is the mode of the file actually read.
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise KeyStoreUnreadable(
                f"device key file {path} is accessible to group or others (mode {mode:04o}); "
                f"fix it with `chmod 600 {path}`"
            )
        key = f.read(DEVICE_KEY_SIZE + 1)
    if len(key) != DEVICE_KEY_SIZE:
        raise KeyStoreUnreadable(f"device key file {path} is damaged: it must hold exactly {DEVICE_KEY_SIZE} bytes")
    return key


def _write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Replace `path` with `data`, mode 0600, so that a power cut leaves either the old or the new file.

    The adapter sits in a meter box and loses power without warning, hence the fsyncs. `exclusive`
    raises FileExistsError instead of replacing. Run as root (`meterlink token`), the file gets
    the owner of the state directory, so that the service's own user can still read it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            if os.geteuid() == 0:
                directory = os.stat(path.parent)
                os.fchown(f.fileno(), directory.st_uid, directory.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_temporaries(*paths: Path) -> None:
    """Remove what `_write_private` left of these files when it was killed before its rename.

    Such a file may hold a whole key store (readable with the device key): it must not outlive a
    factory reset, nor pile up after every power cut.
    """
    for path in paths:
        with contextlib.suppress(OSError):
            for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                log.info("removed %s, left by an interrupted write", leftover)


def _remove(path: Path) -> None:
    """Remove a file; an empty directory in its place too (a file must go there)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        path.rmdir()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True, repr=False)
class _PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        # Checked when the file is read, so that a damaged file is reported as such rather than
        # making scrypt fail or allocate without bound at a login.
        ints = all(type(v) is int for v in (self.n, self.r, self.p))
        if not (ints and 1 < self.n and self.n & (self.n - 1) == 0 and 1 <= self.r and 1 <= self.p <= 16
                and 128 * self.r * self.n <= SCRYPT_MAXMEM // 2 and len(self.salt) >= SALT_SIZE
                and len(self.digest) == HASH_SIZE):
            raise ValueError("bad scrypt parameters")


@dataclass(frozen=True, slots=True, repr=False)
class _Accepted:
    """The secret `Credentials.check` accepted last, as an HMAC, and the stored hash it matched."""

    against: _PasswordHash
    mac: bytes


def _scrypt(secret: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    # NFC: the same password typed on two devices may arrive composed or decomposed.
    data = unicodedata.normalize("NFC", secret).encode("utf-8", "surrogatepass")
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=HASH_SIZE)


def random_token() -> str:
    """A new API token: 24 random bytes, URL-safe (32 characters)."""
    return secrets.token_urlsafe(24)


class Credentials:
    """The device password / API token, stored only as a hash (hashlib.scrypt, random 16-byte salt, n=2**14, r=8, p=1).

    Seed 001 ch. C.1: "password protection for configuration". The file holds the scrypt
    parameters, salt and hash as JSON, mode 0600; the parameters are kept so that hashes made
    now still check if the defaults are raised later.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._mac_key = secrets.token_bytes(32)
        self._accepted: _Accepted | None = None
        remove_temporaries(self._path)

    @property
    def path(self) -> Path:
        return self._path

    def is_set(self) -> bool:
        return self._path.exists()

    def set(self, secret: str) -> None:
        """Store the hash of a new password (at least 8 characters)."""
        if not isinstance(secret, str) or len(secret) < MIN_PASSWORD_LENGTH:
            raise SecretsError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        salt = os.urandom(SALT_SIZE)
        doc = {"algorithm": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
               "salt": salt.hex(), "hash": _scrypt(secret, salt).hex()}
        try:
            _write_private(self._path, json.dumps(doc).encode())
        except OSError as error:
            raise SecretsError(f"cannot write credentials file {self._path}: {error.strerror}") from None
        log.info("device password changed")

    def ensure(self, configured: str | None = None) -> str | None:
        """At start: store the configured password, or make up a token if none is stored.

        Returns the generated token, once, so the caller can show it to the user: the adapter has
        no default password. Returns None in every other case. A damaged file is replaced by a
        configured password; with none configured it raises SecretsError, so the service does not
        start with a password nobody can use.
        """
        if configured is not None:
            with contextlib.suppress(SecretsError):
                if self.check(configured):
                    return None
            self.set(configured)
            return None
        if self._read() is not None:
            return None
        token = random_token()
        self.set(token)
        log.info("generated a device token (handed to the caller once, stored only as a hash)")
        return token

    def check(self, secret: str) -> bool:
        """Whether `secret` is the stored password; False when none is stored. One scrypt."""
        stored = self._read()
        if stored is None or not isinstance(secret, str):
            return False
        if not hmac.compare_digest(_scrypt(secret, stored.salt, stored.n, stored.r, stored.p), stored.digest):
            return False
        self._accepted = _Accepted(stored, self._mac(secret))
        return True

    def recently_accepted(self, secret: str) -> bool:
        """Whether `secret` is the one `check` accepted last, and the stored password is still the one it matched.

        An HMAC under a key that lives only in this process instead of a scrypt, so that a flood of
        wrong guesses, each costing a scrypt, never makes the right token wait (issue 12 item 7).
        The file is read each time: a password changed by `set` or by `meterlink token` in
        another process ends the shortcut at once.
        """
        accepted = self._accepted
        if accepted is None or not isinstance(secret, str):
            return False
        try:
            stored = self._read()
        except SecretsError:
            return False  # `check` says what is wrong with the file
        return stored == accepted.against and hmac.compare_digest(self._mac(secret), accepted.mac)

    def _mac(self, secret: str) -> bytes:
        return hmac.digest(self._mac_key, secret.encode("utf-8", "surrogatepass"), "sha256")

    def _read(self) -> _PasswordHash | None:
        try:
            doc = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SecretsError(f"cannot read credentials file {self._path}: {error.strerror}") from None
        except (ValueError, RecursionError):
            raise self._damaged() from None
        try:
            if doc["algorithm"] != "scrypt":
                raise self._damaged()
            return _PasswordHash(doc["n"], doc["r"], doc["p"], bytes.fromhex(doc["salt"]), bytes.fromhex(doc["hash"]))
        except (ValueError, KeyError, TypeError):
            raise self._damaged() from None

    def _damaged(self) -> SecretsError:
        return SecretsError(f"credentials file {self._path} is damaged; set a new token with "
                            "`meterlink token --config FILE` (or adapter.token in the config)")


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Slows down repeated failed logins per client (e.g. IP address), and limits them across all clients.

    Seed 001 ch. C.1: the password must protect the configuration, so it must not be guessable by
    trying quickly. At most `max_clients` clients are remembered (the least recently failing one is
    dropped first), so a flood of clients cannot exhaust the adapter's memory. A client that
    changes its address escapes its own delay, so at most `budget` failed logins, counting the
    checks under way, are allowed per `budget_window` seconds whoever makes them (`retry_after`).
    """

    def __init__(
        self,
        free_failures: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        forget_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 4096,
        budget: int = 30,
        budget_window: float = 60.0,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_clients = max_clients
        self.budget = budget
        self.budget_window = budget_window
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._recent: deque[float] = deque()  # when the failures of the last budget_window happened
        self._checking = 0

    def retry_after(self) -> float:
        """0 when a password check may start now, else the seconds until the budget has room again."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= self.budget_window:
            self._recent.popleft()
        if len(self._recent) + self._checking < self.budget:
            return 0.0
        # Only checks under way fill the budget: they end within a second.
        return self._recent[0] + self.budget_window - now if self._recent else 1.0

    @contextlib.contextmanager
    def checking(self) -> Iterator[None]:
        """Counts a password check against the budget while it runs, before it is known to fail."""
        self._checking += 1
        try:
            yield
        finally:
            self._checking -= 1

    def delay_for(self, client: str) -> float:
        """Seconds to wait before answering this client's next attempt."""
        entry = self._current(client)
        excess = entry.count - self.free_failures if entry else 0
        if excess <= 0:
            return 0.0
        # The exponent is capped so that a long series of failures cannot overflow the float.
        return min(self.max_delay, self.base_delay * 2.0 ** min(excess - 1, 64))

    def failed(self, client: str) -> None:
        self._recent.append(self._clock())
        entry = self._current(client)
        self._failures[client] = _Failures((entry.count if entry else 0) + 1, self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _current(self, client: str) -> _Failures | None:
        """The client's failures, unless the last one is `forget_after` seconds old."""
        entry = self._failures.get(client)
        if entry is not None and self._clock() - entry.last >= self.forget_after:
            del self._failures[client]
            return None
        return entry
