"""Faults injected into the simulated meter while a transfer runs, between its steps (seed 002
ch. 3.8): a hypothesis rule-based machine whose rules either let the transfer go on for some
steps or change what the meter gets wrong from now on. Whatever the order, the image that ends up
active is exactly the one sent, or the transfer failed and says why, and no image_activate reached
the meter before a successful verification.

The transfer runs in a thread of its own (trio on a MockClock, the simulated meter over memory
streams, tests/image_line.py) and waits after every step until a rule lets it go on, so the faults
change only between steps.
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from image_line import Run, meter, transfer
from meterlink.machines.image_transfer import Image, Outcome, Progress
from meterlink.simulators.image_transfer import Faults

IDENTIFIER = b"50981040-Q4"
DONE = None


class FaultsMidRun(RuleBasedStateMachine):
    @initialize(size=st.integers(1, 8000), block_size=st.sampled_from([100, 333, 985]))
    def start(self, size: int, block_size: int) -> None:
        self.sent = Image(IDENTIFIER, random.Random(size).randbytes(size))
        self.model = meter(block_size=block_size)
        self.server = self.model.image
        self.steps: queue.Queue[Progress | None] = queue.Queue()
        self.go: queue.Queue[bool] = queue.Queue()
        self.free = False  # teardown: run to the end without waiting
        self.run: Run | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._transfer, daemon=True)
        self.thread.start()
        self.over = self.steps.get(timeout=30) is DONE

    def _transfer(self) -> None:
        def between_steps(now: Progress) -> None:
            if not self.free:
                self.steps.put(now)
                self.go.get()
        try:
            self.run = transfer(self.sent, self.model, between_steps=between_steps)
        except BaseException as error:  # noqa: BLE001 (reported in the test's thread)
            self.error = error
        finally:
            self.steps.put(DONE)

    def _faults(self, **changes: object) -> None:
        self.server.faults = dataclasses.replace(self.server.faults, **changes)
        event("a fault changed mid-run" if self.server.received and not self.over else "a fault changed before a block or after the end")

    def _ahead(self, distance: int) -> int:
        """A block number `distance` past the highest the meter received (the transfer's next ones)."""
        return max(self.server.received, default=-1) + distance

    @precondition(lambda self: not self.over)
    @rule(count=st.integers(1, 12))
    def steps_pass(self, count: int) -> None:
        for _ in range(count):
            self.go.put(True)
            if self.steps.get(timeout=30) is DONE:
                self.over = True
                return

    @rule(distance=st.integers(1, 3))
    def a_block_gets_lost(self, distance: int) -> None:
        self._faults(drop_blocks=self.server.faults.drop_blocks | {self._ahead(distance)})

    @rule(distance=st.integers(1, 3))
    def a_block_finds_the_meter_busy(self, distance: int) -> None:
        self._faults(busy_blocks=self.server.faults.busy_blocks | {self._ahead(distance)})

    @rule(fails=st.booleans())
    def verification_fails(self, fails: bool) -> None:
        self._faults(verify_fails=fails)

    @rule(refusals=st.integers(0, 5))
    def activation_is_refused(self, refusals: int) -> None:
        self._faults(activation_refusals=refusals)

    @rule(broken=st.booleans())
    def activation_does_not_take(self, broken: bool) -> None:
        self._faults(activation_broken=broken)

    @rule(seconds=st.sampled_from([1.0, 4.0, 45.0, 400.0]))
    def the_reboot_takes(self, seconds: float) -> None:
        self._faults(reboot_seconds=seconds)

    @rule()
    def the_link_drops_at_the_next_block(self) -> None:
        # The simulated meter drops its link once per run: the first of these rules counts.
        self._faults(drop_link_after=sum(self.server.received.values()) + 1)

    @invariant()
    def no_activation_without_a_successful_verification(self) -> None:
        if hasattr(self, "server"):
            assert all(self.server.verified_before_activation)

    def teardown(self) -> None:
        if not hasattr(self, "thread"):
            return
        self.free = True
        self.go.put(True)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the transfer did not end"
        assert self.error is None, self.error
        run = self.run
        assert run is not None
        server = run.model.image
        event(f"outcome {run.machine.outcome.value}")
        if run.machine.outcome is Outcome.ACTIVE:
            assert server.activations[-1] == (self.sent.identifier, self.sent.data)
            assert run.machine.revision_after == IDENTIFIER.decode() != run.machine.revision_before
        else:
            assert run.machine.outcome is Outcome.FAILED and run.machine.reason
        assert all(activated == (self.sent.identifier, self.sent.data) for activated in server.activations)
        assert all(server.verified_before_activation)


FaultsMidRun.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_faults_injected_between_steps = FaultsMidRun.TestCase
