"""POST /api/v1/links/{name}/image on `meterlink demo`: the DLMS link hands its port to the image
transfer, the simulated Kamstrup meter activates the image, GET on the same path and the link
status show the progress and the verdict, and polling resumes."""

from __future__ import annotations

import random
import time

import httpx

from processes import free_port
from test_service import TOKEN, Running

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_an_image_posted_to_the_dlms_link_becomes_active():
    port = free_port()
    demo = Running("demo", "--http", f"127.0.0.1:{port}", "--token", TOKEN)
    url = f"http://127.0.0.1:{port}/api/v1/links"
    image = random.Random(3).randbytes(3000)
    try:
        demo.line()
        assert httpx.post(f"{url}/dlms/image?identifier=50981040-Q5", content=image, timeout=10).status_code == 401
        assert httpx.post(f"{url}/p1/image?identifier=x", content=image, headers=AUTH, timeout=10).status_code == 409
        assert httpx.get(f"{url}/nope/image", headers=AUTH, timeout=10).status_code == 404
        assert httpx.post(f"{url}/dlms/image", content=image, headers=AUTH, timeout=10).status_code == 422
        started = httpx.post(f"{url}/dlms/image?identifier=50981040-Q5", content=image, headers=AUTH, timeout=10)
        assert started.status_code == 202 and started.json()["size"] == 3000
        assert httpx.post(f"{url}/dlms/image?identifier=50981040-Q6", content=image, headers=AUTH, timeout=10).status_code == 409
        deadline = time.monotonic() + 90
        progress: dict = {}
        while time.monotonic() < deadline and "verdict" not in progress:
            time.sleep(0.5)
            progress = httpx.get(f"{url}/dlms/image", headers=AUTH, timeout=10).json()
        verdict = progress["verdict"]
        assert verdict["result"] == "active", verdict
        assert verdict["revision_before"] == "50981040-Q1" and verdict["revision_after"] == "50981040-Q5"
        assert progress["blocks"] == progress["confirmed"] == 4
        links = {link["name"]: link for link in httpx.get(url, headers=AUTH, timeout=10).json()["links"]}
        assert links["dlms"]["image"]["verdict"]["result"] == "active" and links["p1"]["image"] is None
        openapi = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
        assert "post" in openapi["paths"]["/api/v1/links/{name}/image"]
    finally:
        demo.stop()
