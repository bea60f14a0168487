"""The REST API: `POST /api` compatible with the MeterExtension #1 (seed 000 ch. 3) and `/api/v1`.

`create_app(adapter)` builds the FastAPI application that `meterlink run` serves with hypercorn
(`httpserver`). Seed 001 ch. C.1 (security): configuration commands always need the device password
or API token; reading needs it too, unless the client's address is in `policy.open_reads`. Repeated
failed logins are slowed down per client and limited across all clients (429); the token accepted
last is recognised without a scrypt. The body of `POST /api` is read raw, so the seed's curl
examples (form content type) work; what the seed shows that is not JSON, and what is sent instead,
is listed in `meterextension`. Only `/openapi.json` is served: `/docs` would load its assets from a
CDN, and the adapter is offline.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import json
import logging
import math
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from http import HTTPStatus
from typing import Any, Literal, Union

import httpx
import trio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..actors.link import LinkStatus
from ..supervisor import ChildStatus
from ..machines.image_transfer import Image
from .adapter import Adapter
from .image_transfer import start_image
from .config import FetchHost
from .meterextension import (
    COMMANDS,
    READ_COMMANDS,
    Answer,
    Command,
    CommandId,
    DownloadAnswer,
    DownloadFileCommand,
    ErrorAnswer,
    FactoryResetCommand,
    FirmwareUpdateCommand,
    GetIpInfoCommand,
    IpInfoAnswer,
    LinkRequiredAnswer,
    MeterReadingAnswer,
    MeterReadingCommand,
    MeterSetKeyAnswer,
    MeterSetKeyCommand,
    OkAnswer,
    RequestPostAnswer,
    RequestPostCommand,
    SystemRestartCommand,
    SystemStatusAnswer,
    SystemStatusCommand,
    UnknownCommandAnswer,
    UpdateStatusOut,
    WifiConfigCommand,
    WifiStatusAnswer,
    WifiStatusCommand,
    WifiScanAnswer,
    WifiScanCommand,
    ScannedNetworkOut,
    BaseCommand,
    meter_block,
)
from .secrets import MeterKey, SecretsError, meter_slot, random_token
from .update import FileSource, Source, UpdateBusy, UpdateError, UploadTooLarge, UrlSource, save_upload
from .network import NetworkController
from .wifi import host_ip_info

log = logging.getLogger("meterlink.api")

KEYED_KINDS = frozenset({"mbus", "hdlc-push", "p1", "mep", "auto", "wmbus"})
"""Link kinds whose telegrams are decrypted with the grid operator's keys (meter_setkey); an auto
link may find an encrypted meter, so it takes them too, before or after detection. A MEP link's key
is the MEP Basic Key that authenticates every message."""
FETCH_TIMEOUT = 10.0
FETCH_LIMIT = 1024 * 1024
SSE_KEEPALIVE = 15.0
"""Seconds between comment lines on a quiet stream, so a vanished client is noticed."""
PASSWORD_CHECKS = 2
"""Concurrent password checks: each scrypt takes 16 MiB and tens of milliseconds."""
REFUSED_REQUESTS = {HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.UNPROCESSABLE_ENTITY}
"""Answers logged with one line: the client's own mistake, which whoever integrates it looks for.
Failed logins are logged by the Gate, faults of the adapter where they happen."""


class ApiError(Exception):
    """A request that is answered with `{"error", "message", "result": "ERROR"}` and a 4xx/5xx status."""

    def __init__(self, status: int, error: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, error, message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after

    def response(self, command_id: CommandId | None = None) -> JSONResponse:
        return JSONResponse(self.answer(command_id).to_json(), status_code=self.status, headers=self._headers())

    def answer(self, command_id: CommandId | None) -> ErrorAnswer:
        return ErrorAnswer(error=self.error, message=self.message, id=command_id)

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.status == HTTPStatus.UNAUTHORIZED:
            # RFC 9110: a 401 names the scheme it wants; Basic works too (curl -u any:PASSWORD).
            headers["WWW-Authenticate"] = "Bearer"
        if self.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(self.retry_after))  # whole seconds
        return headers


class LinkRequired(ApiError):
    """meter_setkey without `link` while several links take a key: the answer names them."""

    def __init__(self, links: list[str]) -> None:
        super().__init__(422, "link_required", f"{len(links)} links take a meter key: name the one these keys are for as link")
        self.links = links

    def answer(self, command_id: CommandId | None) -> ErrorAnswer:
        return LinkRequiredAnswer(message=self.message, links=self.links, id=command_id)


# --- authentication (seed 001 ch. C.1) ----------------------------------------------------------------


class Access(enum.Enum):
    READ = "read"
    CONFIGURE = "configure"


def presented_secret(authorization: str | None) -> str | None:
    """The token or password in an Authorization header; None when there is none.

    `Bearer TOKEN`, or `Basic` with any user name and the password. A header that cannot be read
    gives "", which no password equals, so it counts as a failed login.
    """
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            user_password = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return ""
        _, colon, password = user_password.partition(":")
        return password if colon else ""
    return ""


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Gate:
    """Decides whether a request may go on: open reads, or a valid token or password.

    The token accepted last is recognised at once by a keyed hash (`Credentials.recently_accepted`),
    so wrong guesses, each costing a scrypt, never make it wait. Any other secret is checked with a
    scrypt. A client's attempts are checked one at a time, each after the throttle's delay, and the
    delay comes before the check: otherwise a client could run its guesses in parallel, or give up
    on an answer that is late and so learn it was wrong without waiting. Once the throttle's budget
    of failures across all clients is spent, they get 429 without a check.
    """

    def __init__(self, adapter: Adapter) -> None:
        self._adapter = adapter
        self._attempts: dict[str, trio.Lock] = {}
        self._checks = trio.CapacityLimiter(PASSWORD_CHECKS)

    async def authorize(self, request: Request, access: Access) -> None:
        client = client_address(request)
        if access is Access.READ and self._open(client):
            return
        secret = presented_secret(request.headers.get("authorization"))
        if secret is None:
            raise ApiError(401, "unauthorized",
                           "this needs the device password: Authorization: Bearer TOKEN, or Basic with any user")
        if self._adapter.credentials.recently_accepted(secret):
            return
        async with self._one_at_a_time(client):
            await trio.sleep(self._adapter.throttle.delay_for(client))
            await self._check(client, secret)

    def _open(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self._adapter.policy.open_reads)

    async def _check(self, client: str, secret: str) -> None:
        """One scrypt check within the throttle's budget; 401 or 429 unless `secret` is the password."""
        throttle = self._adapter.throttle
        wait = throttle.retry_after()
        if wait > 0:
            raise ApiError(429, "too_many_failed_logins",
                           "too many failed logins on this adapter, from any address; try again later", wait)
        with throttle.checking():
            accepted = await self._scrypt(secret)
        if accepted:
            throttle.succeeded(client)
            return
        throttle.failed(client)
        log.warning("failed login from %s", client)
        raise ApiError(401, "unauthorized", "wrong token or password")

    async def _scrypt(self, secret: str) -> bool:
        try:
            return await trio.to_thread.run_sync(self._adapter.credentials.check, secret, limiter=self._checks)
        except SecretsError:
            log.error("the credentials file cannot be read; nobody can log in until the password is set again")
            raise ApiError(503, "credentials_unavailable", "the adapter's password store is damaged") from None

    @asynccontextmanager
    async def _one_at_a_time(self, client: str) -> AsyncIterator[None]:
        lock = self._attempts.setdefault(client, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            # Keep a lock only while some attempt holds or waits for it: memory stays bounded.
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._attempts.pop(client, None)


# --- POST /api (seed 000 ch. 3) ------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, whatever its Content-Type; 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body may have at most {limit} bytes")


def parse_document(body: bytes) -> dict[str, Any]:
    """The body as a JSON object whose strings are all text, or 400."""
    try:
        document = json.loads(body)
        _check_text(document)
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "the body holds a lone surrogate (such as \\ud800 without its pair); "
                                            "strings must be Unicode text") from None
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        raise ApiError(400, "invalid_json", "the body must be a JSON object such as {\"cmd\": \"meter_reading\"}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object, not an array or a value")
    return document


def _check_text(document: object) -> None:
    """Raise UnicodeEncodeError if a string of the document, a key included, is not text.

    json.loads takes "\\ud800", and a surrogate encoded in UTF-8, as a lone surrogate: no answer
    echoing it (an id, a key named in a 422) and no log line can be encoded, so it is refused here.
    """
    json.dumps(document, ensure_ascii=False).encode("utf-8")


def command_id(document: dict[str, Any]) -> CommandId | None:
    """The id to echo, when the command has a usable one."""
    value = document.get("id")
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def access_for(cmd: object) -> Access:
    """Configuration commands always need credentials; anything else is treated as a read."""
    return Access.CONFIGURE if isinstance(cmd, str) and cmd in COMMANDS and cmd not in READ_COMMANDS else Access.READ


def validate(model: type[BaseCommand], document: dict[str, Any]) -> BaseCommand:
    """The command, or 422 naming the fields; never echoes a value (it may be a key or password)."""
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False, include_context=False)
        )
        raise ApiError(422, "invalid_command", problems) from None


class MeterExtension:
    """Carries out the commands of seed 000 ch. 3 on the adapter."""

    def __init__(self, adapter: Adapter) -> None:
        self._adapter = adapter
        self._keys_lock = trio.Lock()  # the key store is not thread-safe; its I/O runs in threads

    async def run(self, command: BaseCommand) -> OkAnswer:
        match command:
            case MeterReadingCommand():
                return self.meter_reading()
            case MeterSetKeyCommand():
                return await self.set_key(command)
            case WifiConfigCommand():
                password = command.password.get_secret_value() if command.password else None
                await self.network().configure(command.ssid, password, command.mode)
                return OkAnswer()
            case WifiStatusCommand():
                return await self.wifi_status()
            case WifiScanCommand():
                return WifiScanAnswer(networks=[ScannedNetworkOut(ssid=n.ssid, rssi=str(n.rssi), security=n.security)
                                                for n in await self.network().backend.scan()])
            case SystemStatusCommand():
                return self.system_status()
            case GetIpInfoCommand():
                info = host_ip_info()
                return IpInfoAnswer(IP=info.ip, GW=info.gateway, net_mask=info.netmask)
            case SystemRestartCommand():
                log.warning("system_restart requested over the API")
                self._adapter.request_restart()
                return OkAnswer()
            case FactoryResetCommand():
                return await self.factory_reset()
            case FirmwareUpdateCommand():
                self.firmware_update(UrlSource(command.firmware_uri, command.cert))
                return OkAnswer()
            case DownloadFileCommand():
                return await download(allowed_url(command.file_uri, self._adapter.policy.fetch_hosts))
            case RequestPostCommand():
                return await post(allowed_url(command.file_uri, self._adapter.policy.fetch_hosts), command.message)
        raise AssertionError(f"no handler for {type(command).__name__}")

    def meter_reading(self) -> MeterReadingAnswer:
        hub = self._adapter.hub
        blocks = []
        for key in hub.meters():
            window = hub.window(key)
            if window:
                blocks.append(meter_block(key.link, window))
        return MeterReadingAnswer(meter=blocks)

    async def set_key(self, command: MeterSetKeyCommand) -> MeterSetKeyAnswer:
        key = meter_key(command.key, "invalid_key", "the key")
        auth_key = meter_key(command.auth_key, "invalid_auth_key", "the authentication key") if command.auth_key is not None else None
        link = self.key_link(command.link)
        slot = link
        if command.meter_id is not None:
            if self._adapter.links[link].kind != "wmbus":
                raise ApiError(422, "meter_id_not_wmbus", "meter_id names one meter of a wireless M-Bus link (kind wmbus); "
                                                          "this link reads one meter")
            slot = meter_slot(link, command.meter_id)
        async with self._keys_lock:
            await self._keys(self._adapter.keys.set_key, slot, key, auth_key)
        return MeterSetKeyAnswer(link=link)

    def key_link(self, link: str | None) -> str:
        """The named link, else the one link that takes a key."""
        known = self._adapter.links
        if link is not None:
            if link not in known:
                raise ApiError(422, "unknown_link", f"no link of that name; links: {', '.join(sorted(known)) or 'none'}")
            return link
        keyed = sorted(name for name, status in known.items() if status.kind in KEYED_KINDS)
        if not keyed:
            # A key stored under no link would be answered OK and never used.
            raise ApiError(422, "no_keyed_link", f"no configured link takes a meter key (link kinds: "
                                                 f"{', '.join(sorted(KEYED_KINDS))}); configure the meter's [[link]] first")
        if len(keyed) > 1:
            raise LinkRequired(keyed)
        return keyed[0]

    async def factory_reset(self) -> OkAnswer:
        """Seed 000 ch. 3.4.2: meter keys (and device.key), the home network and the API token back to
        the first start; the access point window opens again. The access point's secret stays: the
        device's label shows the password derived from it."""
        log.warning("factory reset requested over the API: meter keys, home network and API token reset, "
                    "access point window open again")
        async with self._keys_lock:
            await self._keys(self._adapter.keys.clear)
        if self._adapter.network is not None:
            await self._adapter.network.factory_reset()
        await self._new_token()
        return OkAnswer()

    async def _new_token(self) -> None:
        """A new API token, shown once as at the first start (the configured one, if the configuration sets it)."""
        configured = self._adapter.configured_token
        credentials = self._adapter.credentials
        try:
            if configured is not None:
                await trio.to_thread.run_sync(credentials.set, configured)
                return
            token = random_token()
            await trio.to_thread.run_sync(credentials.set, token)
        except SecretsError as error:
            log.error("%s", error)
            raise ApiError(503, "credentials_unavailable", "the factory reset could not write a new API token") from None
        self._adapter.announce(f"API token after the factory reset (shown once, stored only as a hash): {token}")

    def network(self) -> NetworkController:
        if self._adapter.network is None:
            raise ApiError(503, "network_not_managed", "this meterlink does not manage the adapter's Wi-Fi")
        return self._adapter.network

    async def _keys(self, call: Callable[..., None], *args: Any) -> None:
        try:
            await trio.to_thread.run_sync(call, *args)
        except SecretsError as error:
            # SecretsError names files and what to do, never key material.
            log.error("%s", error)
            raise ApiError(503, "key_store_unavailable", str(error)) from None

    async def wifi_status(self) -> WifiStatusAnswer:
        """The home network joined or configured, else the access point's (seed 000 ch. 3.3.2); never a password."""
        network = self.network()
        status = await network.status()
        client = status.client
        ssid = client.ssid or status.configured or network.access_point.ssid
        return WifiStatusAnswer(
            ssid=ssid, rssi=str(client.rssi if client.rssi is not None else 0), ap_mac=self._adapter.device.mac,
            IP=client.ip or host_ip_info().ip, backend=status.backend, state=status.state,
            access_point=status.access_point, window_left=round(status.window_left), mode=status.mode,
            reason=status.reason,
        )

    def system_status(self) -> SystemStatusAnswer:
        device = self._adapter.device
        network = self._adapter.network
        updater = self._adapter.updater
        return SystemStatusAnswer(model=device.model, sw_version=device.sw_version, hw_version=device.hw_version,
                                  mac=device.mac, sys_ts=str(int(self._adapter.hub.clock())),
                                  network_backend=network.backend.name if network is not None else "none",
                                  network_state=network.machine.state_label if network is not None else None,
                                  update=UpdateStatusOut(**updater.status()) if updater is not None else None)

    def firmware_update(self, source: Source) -> trio.Event:
        """Start an update in the updater's own task (a client that goes away does not stop it half-way)."""
        updater = self._adapter.updater
        if updater is None:
            # Answered like an unknown command (200, result ERROR): the service is fine, it just does
            # not update itself (the demo), and a MeterExtension client reads `result`.
            raise ApiError(200, "firmware_update_not_available", "this meterlink does not update itself")
        try:
            return updater.start(source)
        except UpdateBusy as error:
            raise ApiError(409, "update_in_progress", str(error)) from None
        except UpdateError as error:
            raise ApiError(422, "invalid_update", str(error)) from None


def meter_key(secret: SecretStr, error: str, name: str) -> MeterKey:
    """A key of meter_setkey, or 400 that never repeats it."""
    try:
        return MeterKey.from_hex(secret.get_secret_value())
    except SecretsError:
        raise ApiError(400, error, f"{name} must be 32 hex digits (16 bytes)") from None


# --- download_file / request_post: off unless the host is listed (SSRF) ------------------------------------


def allowed_url(uri: str, hosts: tuple[str, ...]) -> httpx.URL:
    """The URL if its scheme is http(s) and its host and port are those of an entry of `hosts`
    (`http.fetch_hosts`, `FetchHost`); else 422 or 403."""
    try:
        url = httpx.URL(uri)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ApiError(422, "invalid_uri", "file_uri must be an http or https URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ApiError(422, "invalid_uri", "file_uri must be an http or https URL")
    if not any(FetchHost.parse(entry).allows(url.scheme, url.host, url.port) for entry in hosts):
        raise ApiError(403, "fetch_not_allowed",
                       "download_file and request_post may only reach hosts listed in http.fetch_hosts "
                       "of the configuration (none by default), on the port listed with the host, "
                       "else only on 80 (http) or 443 (https)")
    return url


def _client() -> httpx.AsyncClient:
    # No redirects: a listed host could send us on to one that is not. trust_env=False: no proxy
    # from the environment, so the listed host is the one connected to.
    return httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False, trust_env=False)


async def download(url: httpx.URL) -> DownloadAnswer:
    """GET `url` within FETCH_TIMEOUT and FETCH_LIMIT bytes; only its size and SHA-256 are kept."""
    digest, size = hashlib.sha256(), 0
    with trio.move_on_after(FETCH_TIMEOUT) as deadline:
        try:
            async with _client() as client, client.stream("GET", url) as response:
                if response.status_code != HTTPStatus.OK:
                    raise ApiError(502, "download_failed", f"the server answered HTTP {response.status_code}")
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > FETCH_LIMIT:
                        raise ApiError(502, "download_too_large", f"the file is larger than {FETCH_LIMIT} bytes")
                    digest.update(chunk)
        except httpx.HTTPError as error:
            raise ApiError(502, "download_failed", f"the server could not be reached ({type(error).__name__})") from None
    if deadline.cancelled_caught:
        raise ApiError(504, "download_timeout", f"no complete answer within {FETCH_TIMEOUT:g} s")
    return DownloadAnswer(size=size, sha256=digest.hexdigest())


async def post(url: httpx.URL, message: str) -> RequestPostAnswer:
    """POST `message` to `url`; the answer's status is reported, its body not read."""
    with trio.move_on_after(FETCH_TIMEOUT) as deadline:
        try:
            async with _client() as client, client.stream(
                "POST", url, content=message.encode(), headers={"Content-Type": _content_type(message)}
            ) as response:
                return RequestPostAnswer(status=response.status_code)
        except httpx.HTTPError as error:
            raise ApiError(502, "request_failed", f"the server could not be reached ({type(error).__name__})") from None
    assert deadline.cancelled_caught
    raise ApiError(504, "request_timeout", f"no answer within {FETCH_TIMEOUT:g} s")


def _content_type(message: str) -> str:
    try:
        json.loads(message)
    except (ValueError, RecursionError):
        return "text/plain; charset=utf-8"
    return "application/json"


# --- /api/v1 ------------------------------------------------------------------------------------------


class ProfileRowOut(BaseModel):
    value: Union[int, float, str, None]
    time: str | None = None
    entry_time: str | None = None
    unit: str | None = None
    raw: Union[int, str, None] = None  # "NaN", "Infinity" or "-Infinity" beside a null value
    scaler: int | None = None


class ValueOut(BaseModel):
    obis: str | None  # null for a value sent without a name that its data model does not name
    index: int | None = None  # then its position: a DLMS push's 0-based element index in the body
    value: Union[int, float, str, None, list[ProfileRowOut]]
    unit: str | None = None
    raw: Union[int, str, None] = None  # "NaN", "Infinity" or "-Infinity" beside a null value
    scaler: int | None = None
    unit_code: int | None = None
    time: str | None = None


class ReadingOut(BaseModel):
    """One reading in the format of ARCHITECTURE.md; fields without a value are left out."""

    meter_id: str | None
    link: str
    """The configured link's name."""
    kind: str
    """The link kind: p1, mbus, hdlc-push, dlms, bsm, mep."""
    received_at: float | None
    captured_at: str | None
    values: list[ValueOut]


class MeterOut(BaseModel):
    link: str
    kind: str
    meter_id: str | None
    received_at: float | None


class WindowOut(BaseModel):
    link: str
    meter_id: str | None
    readings: list[ReadingOut]


class LinkOut(BaseModel):
    name: str
    kind: str
    state: str
    state_label: str
    """The state as the diagrams name it; `state` is its id."""
    counters: dict[str, int]
    connected: bool
    last_reading_at: float | None
    readings: int
    drops: dict[str, int]
    last_drop: str | None
    last_drop_at: float | None
    last_drop_cleared: bool
    """A reading was published after the last drop."""
    readings_since_drop: int
    meters_forgotten: int
    """Meters forgotten to keep the link within its `max_meters`, least recently heard first."""
    last_meter_forgotten: str | None
    detected: str | None
    """kind = "auto": what detection found at start (serial setting, framing, maker); null otherwise."""
    last_note: str | None
    """The last part of a telegram left out while the rest was published (a P1 line that does not
    parse, counted in `bad_lines`), naming the line; null if none."""
    last_note_at: float | None
    image: dict[str, Any] | None = None
    """A DLMS link's image transfer, running or last run (see GET /api/v1/links/{name}/image)."""

    @classmethod
    def of(cls, status: LinkStatus) -> LinkOut:
        return cls(name=status.name, kind=status.kind, state=status.state, state_label=status.state_label,
                   counters=dict(status.counters), connected=status.connected, last_reading_at=status.last_reading_at,
                   readings=status.readings, drops=dict(status.drops), last_drop=status.last_drop,
                   last_drop_at=status.last_drop_at, last_drop_cleared=status.last_drop_cleared,
                   readings_since_drop=status.readings_since_drop, meters_forgotten=status.meters_forgotten,
                   last_meter_forgotten=status.last_meter_forgotten, detected=status.detected,
                   last_note=status.last_note, last_note_at=status.last_note_at,
                   image=status.image.progress() if status.image is not None else None)


class ChildOut(BaseModel):
    id: str
    state: Literal["running", "backoff", "stopped", "failed"]
    restarts: int
    last_error: str | None
    last_error_at: float | None
    backoff: float | None
    children: list[ChildOut]

    @classmethod
    def of(cls, status: ChildStatus) -> ChildOut:
        return cls(id=status.id, state=status.state.value, restarts=status.restarts, last_error=status.last_error,
                   last_error_at=status.last_error_at, backoff=status.backoff,
                   children=[cls.of(child) for child in status.children])


class OutputOut(BaseModel):
    """An output (MQTT) and its counters; `queued` readings wait for the broker, `dropped` ones were lost
    to the queue bound, `expired` ones were older than 60 s when their turn came."""

    name: str
    connected: bool
    connects: int
    published: int
    in_flight: int
    queued: int
    dropped: int
    expired: int
    last_error: str | None


class LinksOut(BaseModel):
    links: list[LinkOut]
    supervisor: list[ChildOut]
    outputs: list[OutputOut]


IMAGE_LIMIT = 16 * 1024 * 1024
"""The largest image POST /api/v1/links/{name}/image takes."""


def v1_router(adapter: Adapter, gate: Gate) -> APIRouter:
    async def read_access(request: Request) -> None:
        await gate.authorize(request, Access.READ)

    router = APIRouter(prefix="/api/v1", dependencies=[Depends(read_access)], responses=_errors(401, 429))
    hub = adapter.hub

    @router.get("/meters", response_model=list[MeterOut])
    async def meters() -> list[MeterOut]:
        """Every meter seen: its link, its id and when its last reading arrived."""
        return [MeterOut(link=key.link, kind=latest.kind, meter_id=key.meter_id, received_at=latest.received_at)
                for key in hub.meters() if (latest := hub.latest(key)) is not None]

    @router.get("/readings/latest", response_model=list[ReadingOut])
    async def latest() -> JSONResponse:
        """The latest reading of every meter."""
        return JSONResponse([reading.to_json() for key in hub.meters() if (reading := hub.latest(key)) is not None])

    @router.get("/readings/window", response_model=list[WindowOut])
    async def window() -> JSONResponse:
        """Every meter's readings of the last 60 s, oldest first (seed 001 ch. C.1: nothing older is kept)."""
        return JSONResponse([{"link": key.link, "meter_id": key.meter_id,
                              "readings": [reading.to_json() for reading in hub.window(key)]} for key in hub.meters()])

    @router.get("/links", response_model=LinksOut)
    async def links() -> LinksOut:
        """Each link's machine state and counters, the supervisor's tree of children, and the outputs."""
        return LinksOut(
            links=[LinkOut.of(status) for status in adapter.links.values()],
            supervisor=[ChildOut.of(child) for child in adapter.supervisor_status()],
            outputs=[OutputOut(name=name, **asdict(status())) for name, status in adapter.outputs.items()],
        )

    @router.post("/links/{name}/image", status_code=202, responses=_errors(403, 404, 409, 413, 422),
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def image_transfer(name: str, request: Request, identifier: str | None = None) -> JSONResponse:
        """Send the body as a firmware image to the meter of DLMS link `name` (class 18 image
        transfer, seed 002 ch. 3.8) under `identifier`; the link stops polling until it is over."""
        await gate.authorize(request, Access.CONFIGURE)
        status = _dlms_link(name)
        data = await read_body(request, IMAGE_LIMIT)
        if not data or not identifier:
            raise ApiError(422, "invalid_request", "the image is the body, its identifier the query parameter `identifier`")
        port, association = adapter.dlms_links[name]
        try:
            transfer = start_image(status, port, association, Image(identifier.encode("utf-8"), data))
        except ValueError as error:
            raise ApiError(409, "busy", str(error)) from None
        return JSONResponse(transfer.progress(), status_code=202)

    @router.get("/links/{name}/image")
    async def image_progress(name: str) -> JSONResponse:
        """The image transfer of DLMS link `name`: its step, blocks, bytes, and the verdict once over."""
        status = _dlms_link(name)
        if status.image is None:
            raise ApiError(404, "not_found", f"link {name}: no image transfer was asked for")
        return JSONResponse(status.image.progress())

    def _dlms_link(name: str) -> LinkStatus:
        status = adapter.links.get(name)
        if status is None:
            raise ApiError(404, "not_found", f"no link {name!r}")
        if name not in adapter.dlms_links:
            raise ApiError(409, "not_dlms", f"link {name!r} is not a DLMS link: no image transfer there")
        return status

    @router.get("/stream", response_class=StreamingResponse,
                responses={200: {"description": "`data: <reading JSON>` per reading", "content": {"text/event-stream": {}}}})
    async def stream() -> StreamingResponse:
        """Live readings as Server-Sent Events. A first comment line tells that the stream is subscribed."""
        return StreamingResponse(reading_events(adapter), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return router


async def reading_events(adapter: Adapter) -> AsyncIterator[str]:
    """SSE lines for each reading the hub publishes; ends when the response is cancelled.

    The hub's queue is bounded and drops the oldest for a slow client, so a stalled client never
    delays a link.
    """
    with adapter.hub.subscribe() as subscription:
        yield ": subscribed\n\n"
        while True:
            reading = None
            with trio.move_on_after(SSE_KEEPALIVE):
                reading = await subscription.receive()
            yield ": keepalive\n\n" if reading is None else f"data: {json.dumps(reading.to_json())}\n\n"


# --- /ota (seed 000 ch. 3.1.2) ----------------------------------------------------------------------------

OTA_SUCCESS = "Update_Success!_Rebooting..."
"""What the seed's OTA page answers a good update with."""
OTA_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meterlink update</title></head>
<body><h1>Update meterlink</h1>
<form method="post" action="/ota" enctype="multipart/form-data">
<p><input type="file" name="update" accept=".tar" required> <button>Update</button></p>
</form><p>A signed bundle made by <code>meterlink release build</code> and <code>release sign</code>.</p>
</body></html>
"""


def ota_routes(app: FastAPI, adapter: Adapter, gate: Gate, commands: MeterExtension) -> None:
    """GET /ota: a page to pick a bundle; POST /ota: its upload (multipart/form-data), updated to.
    Both need the device password; a browser asks for it (Basic), as the page has no login form."""

    @app.get("/ota", include_in_schema=False)
    @app.get("/ota.html", include_in_schema=False)
    async def page(request: Request) -> Response:
        try:
            await gate.authorize(request, Access.CONFIGURE)
        except ApiError as error:
            return _ota_refused(error)
        return Response(OTA_PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @app.post("/ota", include_in_schema=False)
    @app.post("/ota.html", include_in_schema=False)
    async def upload(request: Request) -> Response:
        updater = adapter.updater
        try:
            await gate.authorize(request, Access.CONFIGURE)
            if updater is None:
                raise ApiError(404, "firmware_update_not_available", "this meterlink does not update itself")
            try:
                bundle = await save_upload(updater, request.headers.get("content-type", ""), request.stream())
            except UpdateBusy as error:
                raise ApiError(409, "update_in_progress", str(error)) from None
            except UploadTooLarge as error:
                raise ApiError(413, "body_too_large", str(error)) from None
            except UpdateError as error:
                raise ApiError(400, "invalid_upload", str(error)) from None
            try:
                done = commands.firmware_update(FileSource(bundle))
                with trio.CancelScope(shield=True):  # a browser that goes away must not take the upload with it
                    await done.wait()
            finally:
                shutil.rmtree(bundle.parent, ignore_errors=True)
        except ApiError as error:
            return _ota_refused(error)
        outcome = updater.outcome()
        if outcome.result != "restarting":
            return PlainTextResponse(f"Update_Failed: {outcome.reason}", status_code=400)
        return PlainTextResponse(OTA_SUCCESS)


def _ota_refused(error: ApiError) -> Response:
    """As text, for the browser; a 401 asks for Basic, so that the browser shows its password prompt."""
    headers = {"WWW-Authenticate": 'Basic realm="meterlink", charset="UTF-8"'} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(error.retry_after))
    return PlainTextResponse(f"Update_Failed: {error.message}", status_code=error.status, headers=headers)


# --- the application -----------------------------------------------------------------------------------


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorAnswer, "description": HTTPStatus(status).phrase} for status in statuses}


def create_app(adapter: Adapter) -> FastAPI:
    """The API of one adapter."""
    app = FastAPI(title="meterlink", version=adapter.device.sw_version, docs_url=None, redoc_url=None,
                  description=__doc__)
    gate = Gate(adapter)
    commands = MeterExtension(adapter)

    @app.post(
        "/api",
        response_model=None,
        responses={200: {"model": Answer, "description": "the command's answer; unkown_cmd for an unknown command"},
                   **_errors(400, 401, 403, 413, 429, 502, 503, 504),
                   422: {"model": Union[LinkRequiredAnswer, ErrorAnswer], "description": HTTPStatus(422).phrase}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Command"}}}}},
    )
    async def api(request: Request) -> JSONResponse:
        """MeterExtension #1 commands (seed 000 ch. 3). The body is JSON whatever the Content-Type says."""
        document_id = None
        try:
            document = parse_document(await read_body(request, adapter.policy.max_body))
            document_id = command_id(document)
            cmd = document.get("cmd")
            await gate.authorize(request, access_for(cmd))
            if not isinstance(cmd, str):
                raise ApiError(422, "invalid_command", 'the body needs "cmd", a string naming the command')
            model = COMMANDS.get(cmd)
            if model is None:
                return JSONResponse(UnknownCommandAnswer(id=document_id).to_json())
            command = validate(model, document)
            answer = await commands.run(command)
        except ApiError as error:
            if error.status in REFUSED_REQUESTS:
                # The code only: the message may name keys of the body, which are no log text.
                log.info("POST /api from %s refused: %d %s", client_address(request), error.status, error.error)
            return error.response(document_id)
        return JSONResponse(answer.model_copy(update={"id": command.id}).to_json())

    app.include_router(v1_router(adapter, gate))
    ota_routes(app, adapter, gate, commands)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error.response()


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """404, 405 and the like in the same shape as every other error."""
    assert isinstance(error, StarletteHTTPException)
    phrase = HTTPStatus(error.status_code).phrase
    body = ErrorAnswer(error=phrase.lower().replace(" ", "_"), message=str(error.detail)).to_json()
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    return ApiError(422, "invalid_request", "the request's parameters are not valid").response()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description plus the command union as POST /api's body and the two auth schemes."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)
    commands = TypeAdapter(Command).json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(commands.pop("$defs"), Command=commands)
    components["securitySchemes"] = {
        "token": {"type": "http", "scheme": "bearer", "description": "the API token"},
        "password": {"type": "http", "scheme": "basic", "description": "any user name, the device password"},
    }
    schema["security"] = [{"token": []}, {"password": []}]
    app.openapi_schema = schema
    return schema
