"""diagrams/ is generated from the machines: each drawn four ways, kept current by --check."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from statemachine import State
from statemachine.graph import iterate_states
from statemachine.io import load
from statemachine.io.actions import ParseTime
from statemachine.io.model import CancelAction, SendAction
from statemachine.io.scxml.reader import parse_scxml

from meterlink import cli, diagrams
from meterlink.machines import all_machines, transition_keys
from meterlink.machines.base import LinkMachine, StateTimeout

COMMITTED = Path(__file__).parent.parent / "diagrams"


class Nested(LinkMachine):
    """A machine with what P1 lacks: compound and parallel states, a timeout inside one, an
    internal transition of a compound state, a guard with `or`, two events on one transition."""

    class outer(State.Compound, name="Outer"):
        idle = State("Idle", initial=True)
        busy = State("Busy")
        start = idle.to(busy, cond="ready or not blocked")
        stop = busy.to(idle, event="abort")

    class both(State.Parallel, name="Both"):
        class left(State.Compound):
            l1 = State(initial=True)
            l2 = State()
            go_left = l1.to(l2)

        class right(State.Compound):
            r1 = State(initial=True)
            r2 = State(final=True)
            go_right = r1.to(r2)

    done = State("Done", final=True)
    split = outer.to(both)
    poke = outer.to.itself(internal=True, on="count_poke")
    expire = outer.busy.to(done)
    finish = both.to(done)

    timeouts = (StateTimeout("busy", after="busy_timeout", event="expire"),)

    def __init__(self, busy_timeout: float = 0.5) -> None:
        self.busy_timeout = busy_timeout
        super().__init__()

    def count_poke(self) -> None:
        self.counters["pokes"] += 1

    def ready(self) -> bool:
        return True

    def blocked(self) -> bool:
        return False


def blinker(extra_transition: bool) -> type[LinkMachine]:
    """The same small machine before and after someone adds a transition."""

    class Blinker(LinkMachine):
        """Blinks."""

        off = State(initial=True)
        on = State()
        toggle = off.to(on) | on.to(off)
        if extra_transition:
            reset = on.to(off)

    return Blinker


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    if shutil.which("dot") is None:
        pytest.fail("graphviz's `dot` is not installed, and the SVG diagrams need it: "
                    "`bash dev.sh test` installs it (apt-get install graphviz)")
    return diagrams.render_all(all_machines())


def machine_ids(machine: type) -> str:
    return machine.__name__


# -- the committed tree ---------------------------------------------------------------------------


def test_committed_diagrams_are_current(rendered: dict[str, str]) -> None:
    assert diagrams.check(COMMITTED) == [], "run `meterlink diagrams` and commit diagrams/"


def test_cli_check_passes_on_the_committed_tree(rendered: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diagrams", "--check", "--root", str(COMMITTED)]) == cli.EXIT_OK
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("machine", all_machines(), ids=machine_ids)
def test_every_machine_has_svg_mermaid_scxml_and_a_readme_row(machine: type[LinkMachine], rendered: dict[str, str]) -> None:
    name = machine.__name__
    assert rendered[f"{name}.svg"].lstrip().startswith("<?xml") and "<svg" in rendered[f"{name}.svg"]
    assert rendered[f"{name}.mmd"].startswith("stateDiagram-v2\n")
    assert "<scxml " in rendered[f"{name}.scxml"]
    assert f"| [{name}](#{name.lower()}) |" in rendered["README.md"]
    assert f"```mermaid\n{rendered[f'{name}.mmd']}```" in rendered["README.md"]
    assert f"active proctype {name}()" in rendered[f"{name}.pml"]
    for suffix in (".svg", ".mmd", ".scxml", ".pml"):
        assert (COMMITTED / f"{name}{suffix}").is_file()


# -- --check notices change -----------------------------------------------------------------------


def test_a_changed_machine_fails_check_until_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rendered: dict[str, str]
) -> None:
    root = tmp_path / "diagrams"
    shutil.copytree(COMMITTED, root)
    monkeypatch.setattr(diagrams, "all_machines", lambda: [*all_machines(), blinker(extra_transition=False)])
    diagrams.write(root)
    assert diagrams.check(root) == []

    monkeypatch.setattr(diagrams, "all_machines", lambda: [*all_machines(), blinker(extra_transition=True)])
    changed = ["Blinker.mmd", "Blinker.pml", "Blinker.scxml", "Blinker.svg", "README.md"]
    assert diagrams.check(root) == changed
    assert cli.main(["diagrams", "--check", "--root", str(root)]) == cli.EXIT_FAILED
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(root / name) for name in changed]
    assert "meterlink diagrams" in err

    assert cli.main(["diagrams", "--root", str(root)]) == cli.EXIT_OK
    assert cli.main(["diagrams", "--check", "--root", str(root)]) == cli.EXIT_OK


def test_a_new_machine_without_diagrams_fails_check(tmp_path: Path, rendered: dict[str, str]) -> None:
    root = tmp_path / "diagrams"
    shutil.copytree(COMMITTED, root)
    assert diagrams.check(root, [*all_machines(), Nested]) == ["Nested.mmd", "Nested.pml", "Nested.scxml", "Nested.svg", "README.md"]


def test_files_of_a_removed_machine_are_reported_and_removed(tmp_path: Path, rendered: dict[str, str]) -> None:
    root = tmp_path / "diagrams"
    shutil.copytree(COMMITTED, root)
    (root / "Gone.mmd").write_text(f"stateDiagram-v2\n    %% {diagrams.MARKER}\n")
    (root / "hand-drawn.svg").write_text("<svg/>")  # not ours: left alone
    assert diagrams.check(root) == ["Gone.mmd"]
    assert diagrams.write(root)[1] == ["Gone.mmd"]
    assert not (root / "Gone.mmd").exists() and (root / "hand-drawn.svg").exists()
    assert diagrams.check(root) == []


def test_missing_graphviz_is_a_usage_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["diagrams", "--check", "--root", str(tmp_path)]) == cli.EXIT_USAGE
    assert "install graphviz" in capsys.readouterr().err


# -- determinism ----------------------------------------------------------------------------------


def test_output_is_the_same_in_another_process(tmp_path: Path, rendered: dict[str, str]) -> None:
    # Another process has other object ids; the DOT renderer puts them in node names.
    subprocess.run([sys.executable, "-m", "meterlink.cli", "diagrams", "--root", str(tmp_path)],
                   check=True, capture_output=True)
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == rendered
    assert diagrams.render_all(all_machines()) == rendered


def test_svg_carries_no_object_ids_or_graphviz_version(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        if name.endswith(".svg"):
            assert not re.search(r"(__initial_|_atomic_)\d{3,}", text)
            assert "graphviz version" not in text


# -- Mermaid --------------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", [*all_machines(), Nested], ids=machine_ids)
def test_mermaid_has_every_declared_transition_and_timeout(machine: type[LinkMachine]) -> None:
    chart = diagrams.chart_of(machine)
    text = diagrams.mermaid(chart)
    arrows = [line.strip() for line in text.splitlines() if " --> " in line and "[*]" not in line]
    for key in transition_keys(machine):
        guard = f" [{key.cond}]" if key.cond else ""
        internal = " (internal)" if key.internal else ""
        assert any(line.startswith(f"{key.source} --> {key.target} : ") and key.event in line.split(" : ", 1)[1].split()
                   and guard in line and internal in line for line in arrows), key
    # One line per declared transition: guarded variants and internal ones are not merged away.
    assert len(arrows) == len(list(chart.edges()))
    for timer in chart.timers:
        assert f"{timer.event} (after {timer.after} = " in text


def test_p1_mermaid_keeps_what_the_library_renderer_merges() -> None:
    from meterlink.machines.p1 import P1Reader

    text = diagrams.mermaid(diagrams.chart_of(P1Reader))
    assert text.count("reading --> hunting : end_of_telegram") == 5
    assert "hunting --> hunting : noise (internal) / count_noise" in text
    assert "hunting --> stale : silence (after silence_timeout = 3 s) / report_stale" in text


# -- SCXML ----------------------------------------------------------------------------------------


def scxml_texts() -> list[tuple[str, type[LinkMachine], str | None]]:
    """The committed file of every machine, and Nested rendered here."""
    cases = [(m.__name__, m, None) for m in all_machines()]
    return [*cases, ("Nested", Nested, diagrams.scxml(diagrams.chart_of(Nested)))]


def read_scxml(machine: type[LinkMachine], text: str | None) -> str:
    return text if text is not None else (COMMITTED / f"{machine.__name__}.scxml").read_text()


@pytest.mark.parametrize(("name", "machine", "text"), scxml_texts(), ids=[c[0] for c in scxml_texts()])
def test_scxml_loads_back_into_the_same_states_and_transitions(name: str, machine: type[LinkMachine], text: str | None) -> None:
    loaded = load(read_scxml(machine, text), format="scxml")

    def shape(cls: type) -> set[tuple[str, bool, bool]]:
        return {(state.id, bool(state.final), bool(state.parallel)) for state in iterate_states(cls.states)}

    assert shape(loaded) == shape(machine)
    assert {state.id for state in loaded.states if state.initial} == {state.id for state in machine.states if state.initial}

    expected = {(k.source, k.event, k.target, k.cond, k.internal) for k in transition_keys(machine)}
    assert loaded_transitions(loaded) == expected


def loaded_transitions(loaded: type) -> set[tuple[str, str, str, str, bool]]:
    """(source, event, target, guard, internal) of a class the SCXML reader built.

    An internal self-transition was written without a target (SCXML's way to stay in a state
    without exit and entry); the reader builds that as a targetless transition.
    """
    found = set()
    for state in iterate_states(loaded.states):
        for transition in state.transitions:
            if transition.initial:
                continue
            guard = " and ".join(str(spec) for spec in transition.cond)
            if transition.target is None:
                target, internal = state.id, True
            else:
                target, internal = transition.target.id, bool(transition.internal)
            found |= {(state.id, str(event), target, guard, internal) for event in transition.events}
    return found


@pytest.mark.parametrize(("name", "machine", "text"), scxml_texts(), ids=[c[0] for c in scxml_texts()])
def test_scxml_guards_mean_what_the_class_says(name: str, machine: type[LinkMachine], text: str | None) -> None:
    # The reader compiles each cond with its restricted evaluator, resolving names on the model;
    # a model whose attributes stand in for the guard's methods shows how it reads the expression.
    loaded = load(read_scxml(machine, text), format="scxml")
    for state in iterate_states(loaded.states):
        for transition in state.transitions:
            for spec in transition.cond:
                names = sorted(set(re.findall(r"[A-Za-z_]\w*", str(spec))) - {"and", "or", "not"})
                for values in itertools.product([False, True], repeat=len(names)):
                    model = SimpleNamespace(**dict(zip(names, values)))
                    assert spec.func(machine=SimpleNamespace(model=model)) == eval(str(spec), {}, vars(model))


@pytest.mark.parametrize(("name", "machine", "text"), scxml_texts(), ids=[c[0] for c in scxml_texts()])
def test_scxml_timeouts_are_delayed_sends_cancelled_on_exit(name: str, machine: type[LinkMachine], text: str | None) -> None:
    definition = parse_scxml(read_scxml(machine, text))
    sends, cancels = set(), set()
    pending = list(definition.states.values())
    while pending:
        state = pending.pop()
        pending += state.states.values()
        for block in state.onentry:
            sends |= {(state.id, a.event, ParseTime.time_in_ms(a.delay) / 1000, a.id)
                      for a in block.actions if isinstance(a, SendAction)}
        for block in state.onexit:
            cancels |= {(state.id, a.sendid) for a in block.actions if isinstance(a, CancelAction)}
    defaults = machine()
    assert sends == {(t.state, t.event, float(getattr(defaults, t.after)), f"timeout-{t.state}") for t in machine.timeouts}
    assert cancels == {(t.state, f"timeout-{t.state}") for t in machine.timeouts}


def test_scxml_delays_are_css2_times() -> None:
    def delay(seconds: float) -> str:
        return diagrams.Timer("s", "e", "a", seconds).delay

    assert (delay(3.0), delay(600.0), delay(0.5), delay(1.5)) == ("3s", "600s", "500ms", "1500ms")


def test_scxml_is_w3c_namespaced_with_internal_self_transitions_targetless() -> None:
    text = diagrams.scxml(diagrams.chart_of(Nested))
    assert '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" name="Nested" initial="outer">' in text
    assert '<transition event="poke"/>' in text
    assert '<transition event="start" cond="ready or not blocked" target="busy"/>' in text
    assert '<transition event="abort stop" target="idle"/>' in text
    assert '<send event="expire" delay="500ms" id="timeout-busy"/>' in text
