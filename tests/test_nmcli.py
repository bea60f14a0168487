"""The NetworkManager backend (issue 18 item 3) against a fake nmcli on PATH that records its calls
and plays back real nmcli outputs (tests/data/nmcli: NetworkManager's own client tests, and the
activation errors users posted): backend choice, access point, join, wrong password, network not
found, no Wi-Fi device, NetworkManager not running, status and scan. Passwords go to nmcli on its
standard input only, never in its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from fake_nmcli import DATA, FakeNmcli
from meterlink.service.network import NetworkController, WindowStore
from meterlink.service.nmcli import (
    AP_PROFILE,
    CLIENT_PROFILE,
    NetworkManagerWifi,
    find_networkmanager,
    split_terse,
    wifi_devices,
)
from meterlink.service.wifi import AccessPoint, ClientStatus, JoinFailed, ScannedNetwork

AP = AccessPoint("meterextension:7cd9", "label-password-9")
HOME_PASSWORD = "home-password-1"


@pytest.fixture
def nmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNmcli:
    fake = FakeNmcli(tmp_path)
    monkeypatch.setenv("PATH", fake.path())
    return fake


def arguments(fake: FakeNmcli) -> list[list[str]]:
    return [call["args"] for call in fake.calls()]


def no_secret_in_arguments(fake: FakeNmcli, *secrets: str) -> None:
    for call in fake.calls():
        assert not any(secret in argument for secret in secrets for argument in call["args"])


# --- choosing the backend -------------------------------------------------------------------------


async def test_networkmanager_is_chosen_where_it_has_a_wifi_device(nmcli: FakeNmcli) -> None:
    nmcli.rule("DEVICE,TYPE,DBUS-PATH device", stdout="devices_wifi.txt")
    backend, why = await find_networkmanager(None, None)
    assert isinstance(backend, NetworkManagerWifi)
    assert (backend.interface, backend.ap_interface) == ("wlan0", "wlan0")
    assert why == "NetworkManager, Wi-Fi device wlan0"
    chosen, _ = await find_networkmanager("wlan1", "wlan0")
    assert chosen is not None and (chosen.interface, chosen.ap_interface) == ("wlan1", "wlan0")


async def test_no_wifi_device_no_networkmanager_backend(nmcli: FakeNmcli) -> None:
    nmcli.rule("DEVICE,TYPE,DBUS-PATH device", stdout="devices_no_wifi.txt")
    assert await find_networkmanager(None, None) == (None, "NetworkManager has no Wi-Fi device")
    nmcli.rule("DEVICE,TYPE,DBUS-PATH device", stdout="devices_wifi.txt")
    backend, why = await find_networkmanager("wlan7", None)
    assert backend is None and why == "NetworkManager has no Wi-Fi device wlan7 (it has: wlan0, wlan1)"


async def test_networkmanager_not_running(nmcli: FakeNmcli) -> None:
    nmcli.rule("device", stderr="not_running.txt", returncode=8)
    assert await find_networkmanager(None, None) == (None, "NetworkManager is not running")


async def test_no_nmcli_at_all(tmp_path: Path) -> None:
    assert await find_networkmanager(None, None, nmcli=str(tmp_path / "nmcli")) == (None, "nmcli not found")


def test_terse_fields_as_networkmanager_escapes_them() -> None:
    line = (DATA / "wifi_list_all.txt").read_text().splitlines()[0]
    fields = split_terse(line)
    assert fields[:4] == ["AP[1]", "wlan0-ap-2", "776C616E302D61702D32", "C0:E2:BE:E8:EF:B6"]
    assert fields[12] == "WPA1 WPA2" and fields[-1] == "/org/freedesktop/NetworkManager/AccessPoint/2"
    assert wifi_devices((DATA / "devices_wifi.txt").read_text()) == ["wlan0", "wlan1"]


# --- what the backend asks of NetworkManager ------------------------------------------------------


async def test_the_access_point_profile_and_its_password_on_stdin(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    nmcli.rule(f"connection delete id {AP_PROFILE}", returncode=10)  # none yet
    await backend.start_access_point(AP)
    await backend.stop_access_point()
    calls = nmcli.calls()
    assert [call["args"][:3] for call in calls] == [["connection", "delete", "id"], ["connection", "add", "type"],
                                                    ["--wait", "45", "connection"], ["connection", "down", "id"]]
    add = calls[1]["args"]
    assert add[add.index("ssid") + 1] == AP.ssid and add[add.index("802-11-wireless.mode") + 1] == "ap"
    assert add[add.index("autoconnect") + 1] == "no" and add[add.index("ipv4.method") + 1] == "shared"
    assert calls[2]["args"][-2:] == ["passwd-file", "/dev/stdin"]
    assert calls[2]["stdin"] == f"802-11-wireless-security.psk:{AP.password}\n"
    no_secret_in_arguments(nmcli, AP.password)


async def test_join_with_the_password_of_wifi_config(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    await backend.store("home", HOME_PASSWORD)
    await backend.join("home")
    await backend.join("home")  # NetworkManager keeps the password from the first success on
    up = [call for call in nmcli.calls() if "up" in call["args"]]
    assert up[0]["stdin"] == f"802-11-wireless-security.psk:{HOME_PASSWORD}\n"
    assert up[1]["stdin"] == "" and "passwd-file" not in up[1]["args"]
    assert ["connection", "up", "id", CLIENT_PROFILE] == up[0]["args"][2:6]
    no_secret_in_arguments(nmcli, HOME_PASSWORD)


async def test_a_wrong_password_says_so(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    await backend.store("home", "not-the-password")
    nmcli.rule(f"connection up id {CLIENT_PROFILE}", stderr="activation_failed_secrets.txt", returncode=4)
    with pytest.raises(JoinFailed, match=r"^wrong password \(the network asked for it again\)$") as failure:
        await backend.join("home")
    assert "not-the-password" not in str(failure.value)
    no_secret_in_arguments(nmcli, "not-the-password")


async def test_a_network_that_is_not_there(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    await backend.store("elsewhere", None)
    nmcli.rule(f"connection up id {CLIENT_PROFILE}", stderr="activation_failed_not_found.txt", returncode=4)
    with pytest.raises(JoinFailed, match="^the network could not be found$"):
        await backend.join("elsewhere")
    add = next(call["args"] for call in nmcli.calls() if call["args"][:2] == ["connection", "add"])
    assert "wifi-sec.key-mgmt" not in add  # an open network


async def test_an_error_printed_with_exit_zero_is_a_failure(nmcli: FakeNmcli) -> None:
    # ushiboy/nmcli#49: nmcli printed the activation error on stdout and exited 0.
    backend = NetworkManagerWifi("wlan0", "wlan0")
    nmcli.rule(f"connection up id {CLIENT_PROFILE}", stdout="activation_failed_secrets.txt", returncode=0)
    with pytest.raises(JoinFailed, match="wrong password"):
        await backend.join("home")


async def test_status_and_hardware_address_from_device_show(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    nmcli.rule("dev show wlan0", stdout="device_show_wlan0.txt")
    # NetworkManager's test device is connected, but to a profile of its own, not meterlink's.
    assert await backend.client() == ClientStatus(None, None, None)
    assert await backend.hardware_address() == "13:E0:74:85:7C:D9"
    nmcli.rule("dev show wlan0", stderr="device_not_found.txt", returncode=10)
    assert await backend.client() == ClientStatus(None, None, None)
    assert await backend.hardware_address() is None


async def test_configured_and_forget(nmcli: FakeNmcli) -> None:
    backend = NetworkManagerWifi("wlan0", "wlan0")
    nmcli.rule(f"connection show id {CLIENT_PROFILE}", returncode=10)
    assert await backend.configured() is None
    nmcli.rule_text(f"connection show id {CLIENT_PROFILE}", "802-11-wireless.ssid:Cafe: Guest\n")
    assert await backend.configured() == "Cafe: Guest"
    await backend.forget()
    assert arguments(nmcli)[-1] == ["connection", "delete", "id", CLIENT_PROFILE]


async def test_scan_reads_ssid_signal_and_security(nmcli: FakeNmcli) -> None:
    # The three columns of NetworkManager's own `--terse -f ALL device wifi list` output.
    rows = [split_terse(line) for line in (DATA / "wifi_list_all.txt").read_text().splitlines() if line]
    terse = "".join(":".join(field.replace(":", "\\:") for field in (row[1], row[10], row[12])) + "\n" for row in rows)
    nmcli.rule_text("SSID,SIGNAL,SECURITY device wifi list", terse)
    networks = await NetworkManagerWifi("wlan0", "wlan0").scan()
    assert networks == [ScannedNetwork("wlan0-ap-2", 92 // 2 - 100, "WPA1 WPA2"),
                        ScannedNetwork("wlan0-ap-1", 81 // 2 - 100, "WPA1"),
                        ScannedNetwork("wlan0-ap-3", 55 // 2 - 100, "WPA3"),
                        ScannedNetwork("wlan1-ap-4", 48 // 2 - 100, "WPA1 WPA2")]


# --- the controller on NetworkManager -------------------------------------------------------------


async def test_the_controller_on_networkmanager_reports_nmclis_reason(nmcli: FakeNmcli, tmp_path: Path) -> None:
    nmcli.rule(f"connection show id {CLIENT_PROFILE}", returncode=10)
    nmcli.rule("dev show wlan0", stdout="device_show_wlan0.txt")
    backend = NetworkManagerWifi("wlan0", "wlan0")
    controller = NetworkController(backend, AP, WindowStore(tmp_path / "network.json", boot_id=lambda: "boot-1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        await controller.configure("home", "not-the-password", "sta")
        nmcli.rule(f"connection up id {CLIENT_PROFILE}", stderr="activation_failed_secrets.txt", returncode=4)
        with trio.fail_after(10):
            while controller.machine.state_name != "waiting":
                await trio.sleep(0.01)
        status = await controller.status()
        nursery.cancel_scope.cancel()
    assert status.backend == "networkmanager" and status.access_point == AP.ssid
    assert status.reason == "wrong password (the network asked for it again)"
    no_secret_in_arguments(nmcli, "not-the-password", AP.password)
    assert any(call["args"][-2:] == ["passwd-file", "/dev/stdin"] and AP.password in call["stdin"]
               for call in nmcli.calls())
