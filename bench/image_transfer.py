"""Image transfer (class 18) over a simulated 9600-baud line: effective image bytes/s against the
line's physical limit.

The client (ImageTransfer driving DlmsClient, as `meterlink image-transfer` does) and the simulated
Kamstrup meter talk through in-memory streams that take 10 bit times per byte (8N1) in each
direction, on trio's MockClock: the figures are the protocol's, not this machine's speed. The meter
answers at once (a real one adds its own processing time per block). The block phase runs from the
first image_block_transfer to the completeness check; the whole run includes reading, verifying
(3 s in the simulator), the 10 s before the reboot, the reboot (4 s) and the confirmation.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meterlink.actors.image_transfer import ImageHooks, run_image_transfer  # noqa: E402
from meterlink.machines.dlms import Association  # noqa: E402
from meterlink.machines.image_transfer import Image, ImageTransfer, Outcome  # noqa: E402
from meterlink.protocols.hdlc import HdlcParameters  # noqa: E402
from meterlink.simulators.image_transfer import ImageTransferServer  # noqa: E402
from meterlink.simulators.kamstrup import OMNIPOWER_MAX_RECEIVE_PDU, KamstrupMeterModel, run_kamstrup_meter  # noqa: E402

from report import Report, Table, add_json_option, emit  # noqa: E402

BAUD = 9600
BYTE_TIME = 10 / BAUD
LIMIT = BAUD / 10  # bytes/s of 8N1 in one direction


class Line(trio.abc.Stream):
    """One end of a 9600-baud line: each byte sent takes 10 bit times."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def send_all(self, data: bytes) -> None:
        await trio.sleep(len(data) * BYTE_TIME)
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


def run(size: int, block_size: int, meter_rx: int) -> tuple[float, float, int]:
    """(seconds of the block phase, seconds of the whole update, frames the client sent)."""
    model = KamstrupMeterModel(max_receive_pdu=OMNIPOWER_MAX_RECEIVE_PDU, image=ImageTransferServer(block_size=block_size))
    image = Image(b"50981040-Q2", random.Random(1).randbytes(size))
    machine = ImageTransfer(image, meter="bench")
    marks: dict[str, float] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            async def open_stream() -> trio.abc.Stream:
                client, server = trio.testing.memory_stream_pair()

                async def serve() -> None:
                    async with server:
                        await run_kamstrup_meter(Line(server), model, supported=HdlcParameters(1010, meter_rx, 1, 1))
                nursery.start_soon(serve)
                return Line(client)

            def progress(now) -> None:  # type: ignore[no-untyped-def]
                marks.setdefault(now.state, trio.current_time())

            start = trio.current_time()
            association = Association(password=b"12345", proposal=HdlcParameters(1010, 1010, 1, 1))
            await run_image_transfer(open_stream, association, machine, ImageHooks(progress))
            marks["end"] = trio.current_time() - start
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert machine.outcome is Outcome.ACTIVE and model.image.activations[-1][1] == image.data, machine.reason
    blocks = marks["Reading which blocks arrived"] - marks["image_block_transfer invoked"]
    return blocks, marks["end"], machine.counters.get("frames_sent", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="image bytes (default 100000)")
    add_json_option(parser)
    options = parser.parse_args()
    size = options.size
    rows = []
    for block_size, meter_rx in ((985, 128), (985, 1010), (983, 1010), (200, 1010), (100, 128)):
        blocks, whole, _ = run(size, block_size, meter_rx)
        rate = size / blocks
        rows.append([str(block_size), str(meter_rx), f"{blocks:.1f}", f"{rate:.0f}", f"{rate / LIMIT:.1%}", f"{whole:.1f}"])
    table = Table(f"Image of {size:,} bytes over {BAUD} baud 8N1 (physical limit {LIMIT:.0f} bytes/s one way), on trio's "
                  "MockClock: the same on every run:",
                  ["block size", "meter's max info field (rx)", "block phase s", "image bytes/s", "share of the limit",
                   "whole update s"], rows, numeric=6)
    emit(Report("image_transfer", "Image transfer over a simulated 9600-baud line", tables=[table]), options.json)


if __name__ == "__main__":
    main()
