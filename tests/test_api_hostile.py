"""Hostile bodies for POST /api (issue 12 item 4): every one gets a 4xx JSON answer with a message
and at most one log line, never a 500 or a traceback.

`json.loads` takes `"\\ud800"` (and UTF-8-encoded surrogates) as a lone surrogate, which no answer
and no log line can encode: an id echoed, an unknown key named in a 422, an SSID or a link name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlink.service.adapter import ApiPolicy
from test_api import KEY, Rig, api_client, bearer, command, make_rig, rig  # noqa: F401 (fixture)

LONE = "\\ud800"
"""A lone surrogate as JSON writes it."""

BODIES_WITH_A_LONE_SURROGATE = [
    '{"cmd": "x", "id": "%s"}' % LONE,
    '{"cmd": "meter_reading", "id": "%s"}' % LONE,
    '{"cmd": "%s"}' % LONE,
    '{"cmd": "meter_setkey", "key": "%s", "%s": 1}' % (KEY, LONE),
    '{"cmd": "meter_setkey", "key": "%s", "link": "%s"}' % (KEY, LONE),
    '{"cmd": "wifi_config", "ssid": "%s", "mode": "sta"}' % LONE,
    '{"cmd": "download_file", "file_uri": "http://%s/x"}' % LONE,
    '{"cmd": "request_post", "file_uri": "http://localhost/", "message": "%s"}' % LONE,
    '{"cmd": "meter_reading", "list": [[["%s"]]]}' % LONE,
]


def server_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the adapter logged; the test's own HTTP client logs each request too."""
    return [record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))]


@pytest.fixture
def fetching_rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, policy=ApiPolicy(fetch_hosts=("localhost",)))


@pytest.mark.parametrize("auth", [False, True])
@pytest.mark.parametrize("body", BODIES_WITH_A_LONE_SURROGATE)
async def test_a_lone_surrogate_is_400_with_one_log_line(
    fetching_rig: Rig, caplog: pytest.LogCaptureFixture, body: str, auth: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    async with api_client(fetching_rig.adapter) as client:
        response = await command(client, body, auth=auth)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert (answer["error"], answer["result"]) == ("invalid_json", "ERROR") and "surrogate" in answer["message"]
    assert "id" not in answer
    [line] = server_log(caplog)
    assert line.exc_info is None and line.getMessage() == "POST /api from 127.0.0.1 refused: 400 invalid_json"
    assert fetching_rig.adapter.keys.links() == []


async def test_utf8_encoded_surrogates_are_refused_too(fetching_rig: Rig) -> None:
    async with api_client(fetching_rig.adapter) as client:
        response = await command(client, b'{"cmd": "x", "id": "\xed\xa0\x80"}')
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")


async def test_a_surrogate_pair_is_text(fetching_rig: Rig) -> None:
    async with api_client(fetching_rig.adapter) as client:
        response = await command(client, '{"cmd": "system_restart", "id": "\\ud83d\\ude00"}')
    assert response.json() == {"result": "OK", "id": "\N{GRINNING FACE}"}


# --- fuzzing -------------------------------------------------------------------------------------------

COMMAND_NAMES = ["meter_reading", "meter_setkey", "wifi_config", "wifi_status", "system_status", "get_ip_info",
                 "system_restart", "meter_factreset", "firmware_update", "download_file", "request_post", "x"]
FIELDS = ["cmd", "id", "key", "link", "ssid", "password", "mode", "file_uri", "firmware_uri", "message", "cert"]

lone_surrogates = st.builds("{}{}{}".format, st.text(), st.characters(categories=["Cs"]), st.text())
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**4000)
           | st.floats() | st.text() | lone_surrogates)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                      max_leaves=8)
field_values = values | lone_surrogates | st.just(KEY) | st.just("http://192.0.2.9/x")
documents = st.builds(
    lambda fields, extra: extra | fields,
    st.fixed_dictionaries({"cmd": st.sampled_from(COMMAND_NAMES) | field_values},
                          optional={name: field_values for name in FIELDS[1:]}),
    st.dictionaries(st.text() | lone_surrogates, values, max_size=2),
)


def as_json(document: Any) -> bytes:
    # Floats NaN and Infinity go out as the words json.loads takes; lone surrogates as raw UTF-8 bytes.
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


bodies = (
    documents.map(as_json)
    | documents.map(lambda document: json.dumps(document).encode())
    | st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(min_value=1, max_value=3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
    | st.binary(max_size=64)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, auth=st.booleans())
async def test_fuzzed_bodies_never_give_a_server_error(rig: Rig, body: bytes, auth: bool) -> None:
    async with api_client(rig.adapter) as client:
        response = await client.post("/api", content=body, headers=bearer() if auth else {})
    assert response.status_code < 500, response.text
    answer = response.json()
    assert answer["result"] in ("OK", "ERROR")
    if response.status_code >= 400:
        assert answer["message"]
