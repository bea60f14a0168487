"""`http.fetch_hosts` restricts the port too (issue 12 item 8): entries are HOST or HOST:PORT, and a
host listed without a port is reached on 80 (http) or 443 (https) only."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterlink.service.api import ApiError, allowed_url
from meterlink.service.config import ConfigError, parse_config
from test_api import api_client, command
from test_api_fetch import FILE, http_server, listing


async def test_localhost_listed_does_not_reach_another_local_service(tmp_path: Path) -> None:
    async with http_server() as server, api_client(listing(tmp_path, "localhost").adapter) as client:
        download = await command(client, {"cmd": "download_file", "file_uri": server.url("/test.txt", "localhost")})
        posted = await command(client, {"cmd": "request_post", "file_uri": server.url("/api", "localhost"),
                                        "message": "{}"})
    for response in (download, posted):
        assert (response.status_code, response.json()["error"]) == (403, "fetch_not_allowed")
        assert "80 (http) or 443 (https)" in response.json()["message"]
    assert server.seen == []


async def test_localhost_with_the_port_listed_reaches_it(tmp_path: Path) -> None:
    async with http_server() as server:
        rig = listing(tmp_path, f"localhost:{server.port}")
        async with api_client(rig.adapter) as client:
            response = await command(client, {"cmd": "download_file", "file_uri": server.url("/test.txt", "localhost")})
    assert (response.status_code, response.json()["size"]) == (200, len(FILE))


@pytest.mark.parametrize(("uri", "hosts"), [
    ("http://localhost/", ("localhost",)),
    ("http://localhost:80/", ("LOCALHOST",)),
    ("https://localhost/", ("localhost",)),
    ("https://meter.example:443/x", ("meter.example",)),
    ("http://localhost:8080/", ("localhost:8080",)),
    ("https://localhost:8080/", ("localhost:8080",)),
    ("http://127.0.0.1:8123/", ("192.0.2.1", "127.0.0.1:8123")),
    ("http://[::1]:8080/", ("[::1]:8080",)),
    ("http://[0:0::1]/", ("[::1]",)),
])
def test_allowed(uri: str, hosts: tuple[str, ...]) -> None:
    assert allowed_url(uri, hosts) is not None


@pytest.mark.parametrize(("uri", "hosts"), [
    ("http://localhost:8080/", ("localhost",)),
    ("http://localhost:443/", ("localhost",)),
    ("https://localhost:80/", ("localhost",)),
    ("http://localhost/", ("localhost:8080",)),
    ("http://localhost:8081/", ("localhost:8080",)),
    ("http://127.0.0.1:8080/", ("localhost:8080",)),
    ("http://[::1]:8080/", ("[::1]",)),
    ("http://localhost:0/", ("localhost",)),
])
def test_refused(uri: str, hosts: tuple[str, ...]) -> None:
    with pytest.raises(ApiError) as refused:
        allowed_url(uri, hosts)
    assert (refused.value.status, refused.value.error) == (403, "fetch_not_allowed")


def test_config_takes_host_and_host_port() -> None:
    hosts = ["homeassistant.local", "192.168.1.5:8123", "[::1]", "[fd00::5]:8080", "zähler.local:80"]
    assert parse_config({"http": {"fetch_hosts": hosts}}).http.fetch_hosts == hosts


@pytest.mark.parametrize(("entry", "problem"), [
    ("localhost:0", "the port must be 1 to 65535"),
    ("localhost:65536", "the port must be 1 to 65535"),
    ("localhost:http", "expected HOST or HOST:PORT"),
    ("localhost:", "expected HOST or HOST:PORT"),
    ("localhost:８０", "expected HOST or HOST:PORT"),
    ("::1", "([::1]:8080 for IPv6)"),
    ("[::1", "expected HOST or HOST:PORT"),
    ("[127.0.0.1]", "expected HOST or HOST:PORT"),
    ("http://localhost", "expected HOST or HOST:PORT"),
    ("localhost/x", "expected HOST or HOST:PORT"),
    ("user@localhost", "expected HOST or HOST:PORT"),
    ("", "expected HOST or HOST:PORT"),
])
def test_config_names_the_entry_that_is_wrong(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"http": {"fetch_hosts": ["localhost", entry]}}, "m.toml")
    assert str(error.value).startswith("m.toml: http.fetch_hosts[1]: ")
    assert problem in str(error.value)
