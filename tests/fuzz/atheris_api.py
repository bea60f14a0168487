"""atheris harness: the REST API's command bodies (POST /api), through the ASGI app in-process.

Each input is posted with and without the token (the first byte chooses) to an adapter rig of
tests/test_api.py; the answer must be JSON with a result, and never a 5xx. Seeds: the seed's
command examples as tests/test_api.py sends them.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    import json
    import tempfile
    from pathlib import Path

    import trio

    from common import mode, run, seeded
    from test_api import KEY, api_client, bearer, make_rig

RIG = make_rig(Path(tempfile.mkdtemp()))
COMMANDS = [{"cmd": "meter_reading"}, {"cmd": "meter_setkey", "key": KEY}, {"cmd": "wifi_status"},
            {"cmd": "system_status", "id": "1"}, {"cmd": "get_ip_info"}, {"cmd": "wifi_config", "ssid": "home", "password": "12345678", "mode": "sta"},
            {"cmd": "download_file", "file_uri": "http://192.0.2.9/x"}, {"cmd": "meter_reading", "link": "p1"}]


async def post(body: bytes, auth: bool) -> None:
    async with api_client(RIG.adapter) as client:
        response = await client.post("/api", content=body, headers=bearer() if auth else {})
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.json()["result"] in ("OK", "ERROR")


def one_input(data: bytes) -> None:
    which, rest = mode(data, 2)
    trio.run(post, rest, bool(which))


if __name__ == "__main__":
    run("api", one_input, seeded(1, [json.dumps(c).encode() for c in COMMANDS]) + seeded(0, [b'{"cmd": "meter_reading"}']))
