"""A command's standard output as a link (rtl_wmbus: an RTL-SDR's telegrams as lines)."""

from __future__ import annotations

import shlex
import subprocess

import trio

from ._errors import TransportError


class CommandStream(trio.abc.Stream):
    """Reads what the command writes; what is sent to it is dropped (rtl_wmbus takes no input).
    Closing ends the command."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        assert process.stdout is not None
        self._stdout = process.stdout

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._stdout.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if self._process.returncode is None:
            self._process.terminate()
        with trio.move_on_after(2) as waiting:
            waiting.shield = True
            await self._process.wait()
        if self._process.returncode is None:
            self._process.kill()
        await self._stdout.aclose()


async def open_command(command: str) -> CommandStream:
    """Start `command` (split as a shell would, run without one) and read its standard output."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise TransportError(f"command {command!r}: {error}") from None
    if not argv:
        raise TransportError("the command is empty")
    try:
        process = await trio.lowlevel.open_process(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    except OSError as error:
        raise TransportError(f"cannot start {argv[0]}: {error.strerror}") from None
    return CommandStream(process)
