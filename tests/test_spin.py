"""SPIN checks every machine's Promela model (meterlink/promela.py): its safety property and no
invalid end state; a property broken on purpose (tests/spin_broken.py) must fail the check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meterlink import promela
from meterlink.machines import all_machines

pytestmark = pytest.mark.skipif(shutil.which("spin") is None or shutil.which("gcc") is None,
                                reason="SPIN model checking needs Debian's spin and gcc (bash dev.sh test installs them)")

HERE = Path(__file__).parent
PROPERTIES = {"NetworkMachine", "ImageTransfer", "BsmClient", "DlmsClient", "MBusAdapter", "UpdateMachine"}
"""The machines whose safety property issue 23 names."""


def verify_all(models: dict[str, str], workdir: Path) -> dict[str, promela.Verdict]:
    """Verify the models two at a time (spin, gcc and pan are separate processes)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = pool.map(lambda item: promela.verify(item[1], item[0], workdir / item[0]), models.items())
        return {verdict.machine: verdict for verdict in verdicts}


WITNESSES = {
    "NetworkMachine": ("on_enter_window", "on_exit_window", "forget"),
    "ImageTransfer": ("verify", "activate"),
    "BsmClient": ("read_block", "verify_block"),
    "DlmsClient": ("send_aarq", "send_get", "request_next_block", "send_again", "send_next_segment"),
    "MBusAdapter": ("ack",),
    "UpdateMachine": ("switch", "confirm", "roll_back"),
}
"""Actions each property is about: the search must reach them, or the property would hold for want
of ever running them."""


def test_every_machine_satisfies_its_properties(tmp_path: Path) -> None:
    machines = all_machines()
    assert PROPERTIES <= {machine.__name__ for machine in machines if machine.safety is not None} == set(WITNESSES)
    models = {machine.__name__: promela.promela(machine) for machine in machines}
    verdicts = verify_all(models, tmp_path)
    failed = [f"{name}:\n{verdict.report}" for name, verdict in verdicts.items() if verdict.errors]
    assert not failed, "\n\n".join(failed)
    for name, verdict in verdicts.items():
        assert verdict.states > 1 and verdict.transitions > 1
        assert "Search not completed" not in verdict.report
        lines = models[name].splitlines()
        for action in WITNESSES.get(name, ()):
            reached = [number for number, line in enumerate(lines, 1)
                       if f"/* {action} */;" in line and number not in verdict.unreached]
            assert reached, f"{name}: no run reaches {action}"


def test_a_property_broken_on_purpose_fails_the_check(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(HERE / "spin_broken.py"), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))})
    models = {path.stem: path.read_text() for path in sorted(tmp_path.glob("*.pml"))}
    assert set(models) == {"AcksBadFrame", "ActivatesUnverified", "SwitchesUninstalled", "GetsUnassociated",
                           "ReopensAccessPoint"}
    verdicts = verify_all(models, tmp_path / "work")
    violated = {
        "AcksBadFrame": "!(acked_bad_checksum)",
        "ActivatesUnverified": "!(activated_unverified)",
        "SwitchesUninstalled": "current_complete",
        "GetsUnassociated": "!(request_outside)",
        "ReopensAccessPoint": "!((ap_up&&window_over))",
    }
    for name, text in violated.items():
        verdict = verdicts[name]
        assert verdict.errors == 1, verdict.report
        assert "assertion violated" in verdict.report and text in verdict.report, verdict.report
        assert "--- trail ---" in verdict.report


def test_guards_not_declared_are_free_choices_and_declared_ones_are_modeled() -> None:
    from meterlink.machines.mbus import MBusAdapter
    from meterlink.machines.network import NetworkMachine

    assert dict(promela.guard_table(NetworkMachine)) == {
        "window_open": "modeled: !window_over", "configured": "free choice", "beside": "free choice"}
    branches = re.findall(r"^ +:: (cfg == \d+ && ev == E_\w+)(.*) ->$", promela.promela(NetworkMachine), re.MULTILINE)
    # starting takes `start` four ways; which one depends on the window (modeled) and on free guards.
    start = [condition for branch, condition in branches if branch == "cfg == 0 && ev == E_start"]
    assert len(start) == 4 and all("window_over" in condition for condition in start)
    model = promela.promela(MBusAdapter)
    # A segment's guards read its number: from `listening` every outcome stays open, unconditioned.
    segment = re.findall(r"^ +:: cfg == 1 && ev == E_segment ->$", model, re.MULTILINE)
    assert len(segment) >= 3
    assert "acked_bad_checksum = acked_bad_checksum || bad_checksum /* ack */" in model


def test_the_command_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert promela.main(["MBusMeter"]) == 0
    assert re.fullmatch(r"MBusMeter: ok, \d+ states stored, \d+ transitions, depth \d+, [\d.]+ s\n", capsys.readouterr().out)
