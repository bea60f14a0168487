from __future__ import annotations

import trio
import trio.testing


def memory_link_pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Two connected in-memory links for tests, buffered like a serial line.

    Closing one end gives the other end of file (``receive_some`` returns ``b""``);
    sending to a closed end raises `trio.BrokenResourceError`, as on a socket.
    """
    return trio.testing.memory_stream_pair()
