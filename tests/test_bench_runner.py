"""`bash dev.sh bench` (bench/run.py, issue 23 item 3): every benchmark's tables land between its
markers in bench/README.md, beside the peer measured in the same run, with the machine and the date.

The runner runs for real, in quick mode, on the two cheapest benchmarks with a peer, into a copy of
the README; nothing here looks at a figure's value (no timed assertions)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
PEERS = {"p1_decode": "dsmr_parser", "oms": "pymbusparser"}
STALE = "| a figure from an older run | 1 |"


@pytest.fixture(scope="module")
def bench_modules():
    """bench/run.py and bench/report.py, imported as the runner imports them (bench/ first on the path)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report
        import run
        yield run, report
    finally:
        sys.path.remove(str(ROOT / "bench"))


def block(text: str, name: str) -> str:
    found = re.search(f"<!-- bench:{name} begin -->\n(.*?)<!-- bench:{name} end -->", text, re.DOTALL)
    assert found, f"no markers for {name}"
    return found.group(1).rstrip("\n")


def test_readme_has_markers_for_every_benchmark_and_an_accurate_index(bench_modules) -> None:
    run, _ = bench_modules
    text = README.read_text(encoding="utf-8")
    for bench in run.BENCHES:
        block(text, bench.name)
        assert (ROOT / "bench" / f"{bench.name}.py").is_file()
        assert f"## {bench.section}\n" in text, f"the index links to a section {bench.section!r} the README lacks"
    assert block(text, "index") == run.index(run.BENCHES)


def test_quick_run_rewrites_the_blocks_with_meterlink_beside_its_peer(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    for name in PEERS:
        text = text.replace(f"<!-- bench:{name} begin -->\n", f"<!-- bench:{name} begin -->\n{STALE}\n")
    readme.write_text(text, encoding="utf-8")
    before = datetime.now(timezone.utc)

    done = subprocess.run([sys.executable, "bench/run.py", "--quick", "--readme", str(readme), *PEERS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    after = readme.read_text(encoding="utf-8")
    days = {f"{day:%Y-%m-%d}" for day in (before, datetime.now(timezone.utc))}
    for name, peer in PEERS.items():
        generated = block(after, name)
        assert STALE not in generated
        assert any(day in generated for day in days)
        table = [line for line in generated.splitlines() if line.startswith("| ")]
        assert any("meterlink" in line for line in table) and any(peer in line for line in table), generated
    machine = block(after, "machine")
    assert any(day in machine for day in days)
    for field in ("CPU:", "logical CPUs", "load average at start", "Python: ", "dsmr-parser ", "pymbusparser ",
                  "dlms-cosem ", "meterlink source"):
        assert field in machine, field
    # the other benchmarks' blocks are left as they were
    assert block(after, "hdlc") == block(README.read_text(encoding="utf-8"), "hdlc")


def test_unknown_benchmark_is_refused_before_anything_runs(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([sys.executable, "bench/run.py", "--readme", str(readme), "p1_decod"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "p1_decode" in done.stderr
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_report_round_trips_through_json_and_renders_aligned_tables(bench_modules) -> None:
    _, report = bench_modules
    table = report.Table("Rates:", ["variant", "best /s", "median /s"], [["meterlink x", "1,000", "900"]], numeric=2)
    original = report.Report("demo", "Demo", [("CPU", "some CPU")], ["checked: something"], [table])
    assert report.from_json(report.to_json(original)) == original
    assert report.tables_markdown(original) == (
        "- checked: something\n\nRates:\n\n| variant | best /s | median /s |\n|---|---:|---:|\n| meterlink x | 1,000 | 900 |")


def test_a_benchmark_without_markers_gets_a_section_of_its_own(bench_modules) -> None:
    run, _ = bench_modules
    text = run.replace_block("# Benchmarks\n", "gateway", "| a | b |", "Gateway scale")
    assert text == "# Benchmarks\n\n## Gateway scale\n\n<!-- bench:gateway begin -->\n| a | b |\n<!-- bench:gateway end -->\n"
    assert run.replace_block(text, "gateway", "| c |", "Gateway scale").count("bench:gateway begin") == 1
    assert run.anchor("HDLC / DLMS client") == "hdlc--dlms-client"
