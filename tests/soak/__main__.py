"""The soak by hand: `python -m tests.soak --hours 24` from the repository root (README.md here).

Prints a line per simulated hour and the report; exits 1 when a pass criterion fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import trio
import trio.testing

from .soak import Params, soak
from .test_soak import failures


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.splitlines()[0])
    defaults = Params()
    parser.add_argument("--hours", type=float, default=defaults.hours, help="simulated hours (default 24)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--faults-per-hour", type=float, default=defaults.faults_per_hour,
                        help="fault windows per link and simulated hour (default 1)")
    for name in ("p1", "mbus", "hdlc", "dlms", "bsm", "wmbus"):
        parser.add_argument(f"--{name}-interval", type=float, default=getattr(defaults, f"{name}_interval"))
    args = parser.parse_args()
    params = Params(args.hours, args.seed, args.faults_per_hour, args.p1_interval, args.mbus_interval,
                    args.hdlc_interval, args.dlms_interval, args.bsm_interval, args.wmbus_interval)
    with tempfile.TemporaryDirectory() as state:
        report = trio.run(soak, params, Path(state), lambda line: print(line, flush=True),
                          clock=trio.testing.MockClock(autojump_threshold=0))
    print(report.table())
    failed = failures(report)
    for failure in failed:
        print(f"FAIL {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
