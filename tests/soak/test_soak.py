"""The CI-sized soak (README.md in this folder): the service's links with every simulated meter on
MockClock, faults on a seeded schedule, and the pass criteria checked on its report."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from .lines import Ledger, Sent
from .soak import Params, Report, soak

CI = Params(hours=2.0, seed=13, faults_per_hour=15.0)
"""2 simulated hours at the meters' own intervals (P1 1 s, M-Bus 5 s, HDLC 10 s, DLMS 10 s, BSM 5 s,
wireless M-Bus 120 s),
a fault window starting about every 4 minutes after each quiet spell: with this seed every fault kind
on every link it applies to (the schedule depends on the seed and parameters only)."""

RSS_GROWTH_MIB = 16
"""Resident memory may grow this much from 10 simulated minutes in to the end (allocator slack, caches
filled once); a leak of one object per telegram (50,000 telegrams) passes no such bound for long."""
HUB_HELD_MAX = 6 * (60 + 1) * 4
"""Readings the hub may hold: per link at most 60 s of readings (P1: one a second), of 4 meters."""


def failures(report: Report) -> list[str]:
    """Every pass criterion the report fails, as text."""
    failed = list(report.problems)
    for link in report.links.values():
        failed += [f"{link.name}: {problem}" for problem in link.problems]
        if link.published == 0:
            failed.append(f"{link.name}: nothing published")
    if report.links_supervisor_restarts:
        failed.append(f"the links' supervisor gave up {report.links_supervisor_restarts} times (every link restarted)")
    if report.rss_growth_kib > RSS_GROWTH_MIB * 1024:
        failed.append(f"RSS grew {report.rss_growth_kib / 1024:.1f} MiB (bound {RSS_GROWTH_MIB} MiB)")
    if report.hub_readings_held > HUB_HELD_MAX:
        failed.append(f"the hub holds {report.hub_readings_held} readings (bound {HUB_HELD_MAX})")
    if report.sse_received != report.published_total:
        failed.append(f"a live SSE client got {report.sse_received} of {report.published_total} readings")
    if report.sse_stalled_waiting > 256 or report.sse_stalled_waiting + report.sse_stalled_dropped > report.published_total:
        failed.append(f"the stalled SSE client holds {report.sse_stalled_waiting} readings")
    return failed


def test_the_ci_sized_soak_passes(tmp_path: Path) -> None:
    report = trio.run(soak, CI, tmp_path, clock=trio.testing.MockClock(autojump_threshold=0))
    print(report.table())
    assert not failures(report), "\n".join(failures(report))
    # Every fault kind was on every link's schedule, so each criterion above was tried against it.
    line_faults = {"noise", "bit_flip", "truncate", "reboot", "hangup", "hang", "actor_raises"}
    assert {link: set(counts) for link, counts in report.faults.items()} == {
        "p1": line_faults, "kaifa": line_faults | {"wrong_key", "key_change"},
        "hdlc": line_faults | {"wrong_key", "key_change"}, "wmbus": line_faults | {"wrong_key", "key_change"},
        "kamstrup": line_faults | {"image_cut"}, "bsm": line_faults}
    assert all(link.restarts for link in report.links.values())
    assert report.image_cuts == len(report.transfers) == 1


def test_the_ledger_flags_a_lost_a_repeated_and_an_unknown_telegram() -> None:
    """The accounting itself: what the CI run's pass depends on."""
    ledger = Ledger()
    for n, cause in enumerate([None, None, "bit_flip", None]):
        ledger.append(Sent(f"t{n}", float(n), cause))
    ledger.note_published("t0", 0.0)
    ledger.note_published("t3", 3.5)
    ledger.note_published("t3", 3.5)
    ledger.note_published("never-sent", 4.0)
    ledger.settle(before=10.0)
    assert ledger.problems == [
        "telegram t3 (clean) published 2 times",
        "a reading at 4.0 s tagged never-sent matches no telegram waiting (published twice, or never sent)",
        "clean telegram t1 sent at 1.0 s was not published",
    ]
    assert ledger.sent_by_cause == {"clean": 3, "bit_flip": 1} and ledger.published_by_cause == {"clean": 2}
    assert ledger.max_latency == 0.5 and not ledger.pending
