"""What model checking needs to know of a machine beyond its class: its safety property, and the
data the property reads, in Promela (meterlink/promela.py exports the machine, SPIN checks it).

The exporter flattens the machine's configurations from the class itself; each event is chosen
nondeterministically in every step. A guard name not listed in `guards` becomes a free choice
(each name gets one value per step, shared by every transition that reads it), so the model
takes every path the machine could take whatever its data: a property that holds on it holds
on the machine. Where a property depends on a datum (whether an AARE accepted the association,
whether the window is over), the datum is a Promela variable, set by the event that carries it
(`events`) or by the machine's actions (`actions`), and the guards that read it are written over
it (`guards`). Everything a property assumes of actors and codecs is stated in `assumptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Safety:
    """A machine's safety property for SPIN: a Promela expression that holds after every step."""

    says: str
    """The property in words."""
    holds: str
    """The Promela expression asserted after every step."""
    variables: tuple[str, ...] = ()
    """Promela declarations of the data the property reads (`bool ap_up = false`)."""
    guards: Mapping[str, str] = field(default_factory=dict)
    """Guard name -> Promela expression of its value."""
    actions: Mapping[str, str] = field(default_factory=dict)
    """Callback name (a transition's action, or a state's entry or exit) -> Promela statements,
    run where the machine runs the callback, before the step writes the new configuration (so
    `IN_x` names the source)."""
    events: Mapping[str, str] = field(default_factory=dict)
    """Event -> Promela statements run when the event is chosen, before the machine takes it:
    the data it carries (chosen nondeterministically with `if :: ... fi`)."""
    environment: tuple[str, ...] = ()
    """Steps beside the events, each `condition -> statements` (time passing)."""
    setup: str = ""
    """Statements run once before the first step (constants of the link's configuration)."""
    after: str = ""
    """Statements run at the end of every step: per-event data back to their defaults, so that
    the states SPIN stores do not differ by what the last event carried."""
    restart: str | None = None
    """If set, the service may restart the machine at any step (a crash, or the end of its final
    state): these statements, then the initial configuration again."""
    assumptions: tuple[str, ...] = ()
    """What the property assumes of the actor, the codec or the service."""
