"""Failed logins are limited across all addresses, and never make the right token wait (issue 12 item 7).

Rotating source addresses escaped the per-address slow-down (180 guesses in 19 s), and a flood of
wrong tokens, each costing a 16 MiB scrypt, made the real user wait 2-4 s. The scrypt checks are
counted here, and blocked where a test needs them to be slow, rather than timed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from meterlink.service.secrets import Credentials, LoginThrottle
from test_api import TOKEN, Rig, api_client, bearer, make_rig

GUESS = "not-the-token"


class CountedCredentials(Credentials):
    """Counts the scrypt checks; a wrong secret's check can be held until `release` is set."""

    def __init__(self, path: Path, hold_wrong: bool = False) -> None:
        super().__init__(path)
        self.checked: list[str] = []
        self.release = threading.Event()
        if not hold_wrong:
            self.release.set()

    def check(self, secret: str) -> bool:
        self.checked.append(secret)
        if secret != TOKEN:
            self.release.wait(timeout=30)
        return super().check(secret)


def counted_rig(tmp_path: Path, hold_wrong: bool = False, budget: int = 5) -> tuple[Rig, CountedCredentials]:
    rig = make_rig(tmp_path, throttle=LoginThrottle(budget=budget, budget_window=60.0, clock=trio.current_time))
    credentials = CountedCredentials(rig.adapter.credentials.path, hold_wrong)
    rig.adapter.credentials = credentials
    return rig, credentials


async def status(client: httpx.AsyncClient, token: str) -> int:
    response = await client.post("/api", content='{"cmd": "system_status"}', headers=bearer(token))
    return response.status_code


async def guess_from(rig: Rig, address: str) -> httpx.Response:
    async with api_client(rig.adapter, address=address) as client:
        return await client.post("/api", content='{"cmd": "system_status"}', headers=bearer(GUESS))


async def test_rotating_addresses_hit_the_global_budget(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    rig, credentials = counted_rig(tmp_path, budget=5)
    answers = [await guess_from(rig, f"10.0.{n // 250}.{n % 250 + 1}") for n in range(12)]
    assert [answer.status_code for answer in answers] == [401] * 5 + [429] * 7
    refused = answers[-1]
    assert refused.json() == {"error": "too_many_failed_logins", "result": "ERROR",
                              "message": "too many failed logins on this adapter, from any address; try again later"}
    assert refused.headers["Retry-After"] == "60"
    assert credentials.checked == [GUESS] * 5  # a refused guess costs no scrypt
    await trio.sleep(60.0)
    assert (await guess_from(rig, "10.1.0.1")).status_code == 401


async def test_the_right_token_gets_in_while_the_budget_is_spent(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    rig, credentials = counted_rig(tmp_path, budget=5)
    async with api_client(rig.adapter, address="192.168.1.20") as user:
        assert await status(user, TOKEN) == 200
        for _ in range(4):
            await guess_from(rig, "10.0.0.1")
        for n in range(4):
            await guess_from(rig, f"10.0.1.{n + 1}")
        assert rig.adapter.throttle.delay_for("10.0.0.1") > 0 and rig.adapter.throttle.retry_after() > 0
        started = trio.current_time()
        assert [await status(user, TOKEN) for _ in range(3)] == [200] * 3
        # From an attacker's own address too (one NAT, one reverse proxy): no delay, no scrypt.
        async with api_client(rig.adapter, address="10.0.0.1") as shared:
            assert await status(shared, TOKEN) == 200
    assert trio.current_time() == started
    assert credentials.checked.count(TOKEN) == 1


async def test_a_token_not_accepted_since_the_start_waits_for_the_budget_like_a_guess(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """It cannot be told from a guess without a scrypt, which is what the budget keeps from a flood."""
    rig, _ = counted_rig(tmp_path, budget=5)
    for n in range(5):
        await guess_from(rig, f"10.0.0.{n + 1}")
    async with api_client(rig.adapter, address="192.168.1.20") as user:
        refused = await user.post("/api", content='{"cmd": "system_status"}', headers=bearer())
        await trio.sleep(float(refused.headers["Retry-After"]))
        assert await status(user, TOKEN) == 200
    assert refused.status_code == 429


async def test_a_flood_of_wrong_tokens_does_not_make_the_right_token_wait(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Every wrong token's scrypt is held: the flood fills both check threads and the budget.
    rig, credentials = counted_rig(tmp_path, hold_wrong=True, budget=30)
    flood: list[int] = []

    async def attacker(n: int) -> None:
        flood.append((await guess_from(rig, f"10.0.{n // 250}.{n % 250 + 1}")).status_code)

    async with api_client(rig.adapter, address="192.168.1.20") as user:
        assert await status(user, TOKEN) == 200
        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(attacker, n)
            await trio.testing.wait_all_tasks_blocked()
            try:
                with trio.fail_after(1.0):  # MockClock: fires as soon as the user's request waits for anything
                    answers = [await status(user, TOKEN) for _ in range(10)]
            finally:
                credentials.release.set()
    assert answers == [200] * 10
    assert credentials.checked.count(TOKEN) == 1
    assert sorted(flood) == [401] * 30 + [429] * 170
    assert len(credentials.checked) == 31


@pytest.mark.parametrize("change", ["in_the_service", "by_meterlink_token"])
async def test_a_new_password_ends_the_shortcut_for_the_old_one(tmp_path: Path, change: str) -> None:
    rig, credentials = counted_rig(tmp_path)
    async with api_client(rig.adapter) as client:
        assert await status(client, TOKEN) == 200
        writer = credentials if change == "in_the_service" else Credentials(credentials.path)  # another process
        writer.set("the-new-password")
        old = await status(client, TOKEN)
        new = await status(client, "the-new-password")
    assert (old, new) == (401, 200)
    assert credentials.checked == [TOKEN, TOKEN, "the-new-password"]


def test_only_the_secret_checked_last_takes_the_shortcut(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "token.hash")
    credentials.set(TOKEN)
    assert not credentials.recently_accepted(TOKEN)  # set() alone accepts nothing
    assert not credentials.check(GUESS) and not credentials.recently_accepted(GUESS)
    assert credentials.check(TOKEN) and credentials.recently_accepted(TOKEN)
    assert not credentials.recently_accepted(TOKEN + " ") and not credentials.recently_accepted("")
    (tmp_path / "token.hash").write_text("damaged")
    assert not credentials.recently_accepted(TOKEN)


def test_the_budget_counts_checks_under_way_and_forgets_after_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(budget=2, budget_window=60.0, clock=lambda: now[0])
    with throttle.checking():
        assert throttle.retry_after() == 0.0
        with throttle.checking():
            assert throttle.retry_after() == 1.0  # only checks under way fill it: they end soon
    throttle.failed("10.0.0.1")
    assert throttle.retry_after() == 0.0
    now[0] = 20.0
    throttle.failed("10.0.0.2")
    assert throttle.retry_after() == 40.0  # when the first failure leaves the window
    now[0] = 60.0
    assert throttle.retry_after() == 0.0
    # The per-address slow-down is kept.
    assert [throttle.delay_for(f"10.0.0.{n}") for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.delay_for("10.0.0.1") == throttle.base_delay
