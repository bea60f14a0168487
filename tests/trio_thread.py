"""trio under a MockClock in a helper thread, for hypothesis stateful tests of actors.

hypothesis-trio does not work with current hypothesis (ARCHITECTURE.md), so a rule calls into a
trio loop running in another thread. Time stands still between calls (the clock never jumps by
itself); `sleep` lets virtual time pass with trio jumping from one deadline to the next, in order.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.testing

T = TypeVar("T")


class TrioThread:
    def __init__(self) -> None:
        self.clock = trio.testing.MockClock(autojump_threshold=math.inf)
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self.nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        try:
            trio.run(main, clock=self.clock)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self._error = error
            self._ready.set()

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `function(*args)` in the loop, then wait until every task there is blocked."""
        async def run() -> T:
            result = await function(*args)
            await trio.testing.wait_all_tasks_blocked()
            return result

        if self._error is not None:
            raise self._error
        return trio.from_thread.run(run, trio_token=self._token)

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass, every deadline in between firing in order."""
        async def sleep() -> None:
            self.clock.autojump_threshold = 0
            try:
                await trio.sleep(seconds)
            finally:
                self.clock.autojump_threshold = math.inf

        self.call(sleep)

    def now(self) -> float:
        return self.clock.current_time()

    def close(self) -> None:
        if self._stop is not None and self._error is None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()
        if self._error is not None:
            raise self._error
