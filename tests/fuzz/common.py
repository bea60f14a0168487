"""What every atheris harness shares: the seed corpus from tests/data, and the libFuzzer run.

A harness is `python tests/fuzz/atheris_NAME.py [libFuzzer flags] [corpus dirs]`; without a corpus
directory it keeps its corpus in $METERLINK_FUZZ_CORPUS/NAME/ (default /tmp/meterlink-fuzz/NAME/). Its
seeds (the real captures, and for a repairing mode the plaintexts it re-encrypts, each behind its
mode byte) are written to NAME/seeds/ there and read on every run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

CORPUS = Path(os.environ.get("METERLINK_FUZZ_CORPUS", "/tmp/meterlink-fuzz"))
"""Where each harness keeps its corpus (a directory per harness) unless given directories."""
TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))  # the seeds and mutations of the hypothesis fuzz tests


def run(name: str, one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Fuzz `one_input` with libFuzzer's flags from the command line, seeded with `seeds`."""
    args = [arg for arg in sys.argv[1:] if arg.startswith("-")]
    corpora = [arg for arg in sys.argv[1:] if not arg.startswith("-")] or [str(CORPUS / name)]
    seed_dir = CORPUS / name / "seeds"  # read with the corpus; new inputs go to the first directory
    seed_dir.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(seeds):
        (seed_dir / f"seed-{number:03d}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *args, *corpora, str(seed_dir)], one_input)
    atheris.Fuzz()


def mode(data: bytes, modes: int) -> tuple[int, bytes]:
    """The first byte picks one of `modes` ways in; the rest is the input."""
    return (data[0] % modes, data[1:]) if data else (0, b"")


def seeded(which: int, seeds: Iterable[bytes]) -> list[bytes]:
    """`seeds` as inputs of mode `which`."""
    return [bytes((which,)) + seed for seed in seeds]
