"""Machines with a safety property broken on purpose, for tests/test_spin.py: each adds one
transition to a real machine. Run as a script in a process of its own (a subclass that declares a
transition adds it to the parent's states too, which would change the real machine for the rest
of a test session): `python tests/spin_broken.py DIR` writes DIR/<name>.pml for each."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from meterlink.machines.dlms import DlmsClient
from meterlink.machines.image_transfer import ImageTransfer
from meterlink.machines.mbus import MBusAdapter
from meterlink.machines.network import NetworkMachine
from meterlink.machines.update import UpdateMachine
from meterlink.promela import promela


class AcksBadFrame(MBusAdapter):
    """Acks a frame whose checksum failed (the framer hands it over as this new event)."""

    bad_frame_acked = MBusAdapter.listening.to.itself(internal=True, on="ack")
    safety = dataclasses.replace(MBusAdapter.safety, events={**MBusAdapter.safety.events,  # type: ignore[union-attr]
                                                             "bad_frame_acked": "bad_checksum = true"})


class ActivatesUnverified(ImageTransfer):
    """Invokes image_activate as soon as every block arrived, without image_verify."""

    skip_verify = ImageTransfer.update.session.checking.to(ImageTransfer.update.session.activating, on="activate")


class SwitchesUninstalled(UpdateMachine):
    """Switches `current` to a release that was verified but never installed."""

    skip_install = UpdateMachine.updating.installing.to(UpdateMachine.updating.switching, on="switch")


class GetsUnassociated(DlmsClient):
    """Sends its GET as soon as the link is connected, before AARQ/AARE."""

    hurry = DlmsClient.link.session.connected.to(DlmsClient.link.session.waiting.awaiting_response, on="send_get")


class ReopensAccessPoint(NetworkMachine):
    """Goes back to sharing the access point from client mode, after the window."""

    share_again = NetworkMachine.running.after_window.online.to(NetworkMachine.running.window.sharing)


BROKEN = (AcksBadFrame, ActivatesUnverified, SwitchesUninstalled, GetsUnassociated, ReopensAccessPoint)

if __name__ == "__main__":
    directory = Path(sys.argv[1])
    for machine in BROKEN:
        (directory / f"{machine.__name__}.pml").write_text(promela(machine))
