"""meter_setkey (seed 000 ch. 3.5.2) with meterlink's auth_key and link (issue 13 item 4).

Without `link` the keys go to the one configured link that takes a key; with none or several, 422
says so (`no_keyed_link`, or `link_required` naming them). The answer names the link the keys went
to and never shows a key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meterlink.actors.link import LinkStatus
from meterlink.service.api import create_app
from meterlink.service.secrets import KeyPair, MeterKey

from test_api import KEY, Rig, api_client, command, make_rig, stored

AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
OTHER = "FFEEDDCCBBAA99887766554433221100"


def rig_with(tmp_path: Path, *links: tuple[str, str]) -> Rig:
    return make_rig(tmp_path, links={name: LinkStatus(name, kind) for name, kind in links})


def pair(key: str, auth_key: str | None = None) -> KeyPair:
    return KeyPair(MeterKey.from_hex(key), MeterKey.from_hex(auth_key) if auth_key else None)


async def test_the_one_keyed_link_gets_both_keys_and_the_answer_names_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_with(tmp_path, ("house", "mbus"), ("kamstrup", "dlms"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY, "id": "123"})
    assert response.status_code == 200
    assert response.json() == {"link": "house", "result": "OK", "id": "123"}
    assert rig.adapter.keys.links() == ["house"]
    assert stored(rig, "house") == [pair(KEY, AUTH_KEY)]
    assert caplog.records, "the change is logged (without the keys)"
    for text in (response.text, caplog.text):
        assert KEY.lower() not in text.lower() and AUTH_KEY.lower() not in text.lower()


async def test_without_auth_key_only_the_key_is_stored(tmp_path: Path) -> None:
    rig = rig_with(tmp_path, ("mbus", "mbus"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY})
    assert response.json() == {"link": "mbus", "result": "OK"}
    assert stored(rig, "mbus") == [pair(KEY)]


async def test_several_keyed_links_need_a_link_and_the_answer_names_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_with(tmp_path, ("kamstrup", "dlms"), ("shop", "mbus"), ("flat", "mbus"))
    async with api_client(rig.adapter) as client:
        refused = await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY, "id": 7})
        flat = await command(client, {"cmd": "meter_setkey", "key": KEY, "link": "flat"})
        shop = await command(client, {"cmd": "meter_setkey", "key": OTHER, "auth_key": AUTH_KEY, "link": "shop"})
    assert refused.status_code == 422
    assert refused.json() == {"error": "link_required", "message": "2 links take a meter key: name the one these keys are for as link",
                              "links": ["flat", "shop"], "result": "ERROR", "id": 7}
    assert (flat.json(), shop.json()) == ({"link": "flat", "result": "OK"}, {"link": "shop", "result": "OK"})
    assert stored(rig, "flat") == [pair(KEY)] and stored(rig, "shop") == [pair(OTHER, AUTH_KEY)]
    for text in (refused.text, caplog.text):
        assert KEY.lower() not in text.lower() and AUTH_KEY.lower() not in text.lower()


async def test_no_keyed_link_is_422_and_stores_nothing(tmp_path: Path) -> None:
    """A key stored under no link would be answered OK and never be used."""
    rig = rig_with(tmp_path, ("kamstrup", "dlms"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY})
    assert response.status_code == 422
    assert response.json()["error"] == "no_keyed_link"
    assert "(link kinds: auto, hdlc-push, mbus, mep, p1, wmbus)" in response.json()["message"]
    assert rig.adapter.keys.links() == []


async def test_an_auto_link_takes_the_key_before_it_found_its_meter(tmp_path: Path) -> None:
    """kind = "auto" may find an encrypted meter; its key is there for detection and for the link found."""
    rig = rig_with(tmp_path, ("kamstrup", "dlms"), ("meter", "auto"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY})
    assert response.json() == {"link": "meter", "result": "OK"}
    assert rig.adapter.keys.links() == ["meter"]


async def test_a_named_link_must_be_configured(tmp_path: Path) -> None:
    rig = rig_with(tmp_path, ("mbus", "mbus"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY, "link": "default"})
    assert (response.status_code, response.json()["error"]) == (422, "unknown_link")
    assert rig.adapter.keys.links() == []


async def test_a_new_pair_waits_for_the_meter_while_the_old_one_works(tmp_path: Path) -> None:
    """The hybrid change-over of seed 001 ch. C.1 holds for the authentication key too."""
    rig = rig_with(tmp_path, ("mbus", "mbus"))
    async with api_client(rig.adapter) as client:
        await command(client, {"cmd": "meter_setkey", "key": KEY})
        await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY})
    assert stored(rig, "mbus") == [pair(KEY, AUTH_KEY), pair(KEY)]


@pytest.mark.parametrize("bad", [AUTH_KEY[:-1], AUTH_KEY + "0", AUTH_KEY[:-1] + "G", "", "secret-meter-key-almost-right!!!"])
async def test_a_bad_auth_key_is_400_without_echo(tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_with(tmp_path, ("mbus", "mbus"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": bad})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_auth_key", "message": "the authentication key must be 32 hex digits (16 bytes)",
                               "result": "ERROR"}
    assert bad == "" or bad not in caplog.text + response.text
    assert rig.adapter.keys.links() == []


async def test_an_auth_key_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    rig = rig_with(tmp_path, ("mbus", "mbus"))
    async with api_client(rig.adapter) as client:
        response = await command(client, '{"cmd": "meter_setkey", "key": "%s", "auth_key": 7}' % KEY)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_command")
    assert "auth_key" in response.json()["message"]


def test_the_openapi_description_has_auth_key_link_and_the_answers(tmp_path: Path) -> None:
    schema = create_app(rig_with(tmp_path, ("mbus", "mbus")).adapter).openapi()
    schemas = schema["components"]["schemas"]
    command_fields = schemas["MeterSetKeyCommand"]["properties"]
    assert command_fields["auth_key"]["pattern"] == command_fields["key"]["pattern"] == "^[0-9A-Fa-f]{32}$"
    assert "link" in command_fields
    assert schemas["MeterSetKeyAnswer"]["required"] == ["link"]
    assert "links" in schemas["LinkRequiredAnswer"]["properties"]
    responses = schema["paths"]["/api"]["post"]["responses"]
    assert "LinkRequiredAnswer" in str(responses["422"]) and "MeterSetKeyAnswer" in str(responses["200"])
