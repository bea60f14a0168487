"""Start-up as a user meets it, in real processes (issue 11 items 2-4).

What no restart can mend ends the start with one line naming the key or file and what is wrong,
and exit 2 (the systemd unit does not restart on 2): a busy HTTP port, a state directory that is a
file or cannot be made, a config that is not UTF-8, a damaged token hash. The API token is never
lost: the port is taken before a token is made, and `meterlink token` sets a new one.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from meterlink.service.secrets import Credentials
from processes import METERLINK, free_port, meterlink
from test_service import Running

NOBODY = 65534


def write_config(path: Path, state_dir: Path, port: int, extra: str = "") -> Path:
    path.write_text(f'[adapter]\nstate_dir = "{state_dir}"\n[http]\nlisten = "127.0.0.1:{port}"\n{extra}')
    return path


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def one_line(stderr: bytes) -> str:
    """The one line a failed start prints; no traceback, no exception group."""
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, stderr.decode()
    assert "Traceback" not in lines[0] and "ExceptionGroup" not in lines[0]
    return lines[0]


# --- item 2: the token is never lost ------------------------------------------------------------------


def test_a_busy_port_at_the_first_start_stores_no_token_nobody_saw(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with busy_port() as port:
        failed = meterlink("run", "--config", str(write_config(tmp_path / "m.toml", state, port)), timeout=20)
    assert failed.returncode == 2
    assert one_line(failed.stderr) == f"meterlink: 127.0.0.1:{port}: address already in use " \
                                      "(another meterlink, or another server, has this port)"
    assert not (state / "token.hash").exists()

    port = free_port()
    service = Running("run", "--config", str(write_config(tmp_path / "m.toml", state, port)))
    try:
        assert service.line() == f"meterlink: serving http://127.0.0.1:{port}/ (links: none)"
        token = service.line().removeprefix("API token (shown once, stored only as a hash): ")
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/links", headers={"Authorization": f"Bearer {token}"})
    finally:
        took, code, _ = service.stop()
    assert answer.status_code == 200
    assert code == 0


def test_meterlink_token_sets_a_new_token_that_the_service_accepts(tmp_path: Path) -> None:
    state, port = tmp_path / "state", free_port()
    config = write_config(tmp_path / "m.toml", state, port)
    first = Running("run", "--config", str(config))
    try:
        first.line()
        first.line()  # the generated token, lost by our user
        made = meterlink("token", "--config", str(config))
        assert made.returncode == 0, made.stderr
        new_token = made.stdout.decode().strip()
        headers = {"Authorization": f"Bearer {new_token}"}
        # The running service checks against the file: the new token works at once.
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/links", headers=headers)
    finally:
        first.stop()
    assert answer.status_code == 200
    assert len(new_token) >= 32 and new_token.encode() not in (state / "token.hash").read_bytes()
    assert stat.S_IMODE((state / "token.hash").stat().st_mode) == 0o600
    assert list(state.glob(".*.tmp")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the owner of a file is only chosen by root")
def test_meterlink_token_as_root_leaves_the_hash_readable_by_the_service_user(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)  # as systemd's StateDirectory= hands it to the service's user
    made = meterlink("token", "--config", str(write_config(tmp_path / "m.toml", state, free_port())))
    assert made.returncode == 0, made.stderr
    info = (state / "token.hash").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o600)
    assert Credentials(state / "token.hash").check(made.stdout.decode().strip())


def test_meterlink_token_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    missing = meterlink("token", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2
    assert one_line(missing.stderr) == f"meterlink: {tmp_path / 'none.toml'}: cannot read: No such file or directory"


# --- item 3: a busy port is a configuration error, not a fault to restart -------------------------------


def test_demo_on_a_busy_port_says_so_and_exits_2() -> None:
    with busy_port() as port:
        demo = meterlink("demo", "--http", f"127.0.0.1:{port}", "-v", timeout=20)
    assert demo.returncode == 2
    lines = demo.stderr.decode().strip().splitlines()
    assert lines[-1] == f"meterlink: 127.0.0.1:{port}: address already in use " \
                        "(another meterlink, or another server, has this port)"
    assert not any("ExceptionGroup" in line or "Traceback" in line or "failed" in line for line in lines)
    assert demo.stdout == b""  # no URL announced for a port that is not ours


# --- item 4: one line, not a traceback ------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["demo", "--http", "18080"], "meterlink: --http: expected HOST:PORT such as 127.0.0.1:8080, got '18080'"),
    (["demo", "--token", "short"], "meterlink: --token: an API token has at least 8 characters"),
])
def test_bad_demo_options_are_one_line(args: list[str], expected: str) -> None:
    result = meterlink(*args, timeout=20)
    assert result.returncode == 2
    assert one_line(result.stderr) == expected


def state_that_cannot_be_created(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "plain").write_text("")
    return tmp_path / "plain" / "state", "cannot create {}: Not a directory"


def state_that_is_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "state").write_text("")
    return tmp_path / "state", "{} is not a directory"


@pytest.mark.parametrize("case", [state_that_cannot_be_created, state_that_is_a_file])
def test_an_unusable_state_dir_is_one_line_naming_the_key(tmp_path: Path, case) -> None:
    state, message = case(tmp_path)
    result = meterlink("run", "--config", str(write_config(tmp_path / "m.toml", state, free_port())), timeout=20)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"meterlink: adapter.state_dir: {message.format(state)}"


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_a_state_dir_the_service_user_cannot_write_is_one_line() -> None:
    with tempfile.TemporaryDirectory() as where:  # pytest's tmp_path is root's alone (0700)
        top = Path(where)
        top.chmod(0o755)
        state = top / "state"
        state.mkdir(mode=0o755)  # root's: the unprivileged service user may look, not write
        config = write_config(top / "m.toml", state, free_port())
        config.chmod(0o644)
        result = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                                 *METERLINK, "run", "--config", str(config)], capture_output=True, timeout=20)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"meterlink: adapter.state_dir: {state} is not writable by this user (uid {NOBODY})"


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_bytes('[adapter]\nstate_dir = "/tmp/zähler"\n'.encode("latin-1"))
    result = meterlink("run", "--config", str(config))
    assert result.returncode == 2
    assert one_line(result.stderr) == f"meterlink: {config}: not UTF-8 text (byte 0xE4 on line 2); save it as UTF-8"


def test_a_garbage_token_hash_is_one_line_saying_how_to_set_a_new_token(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "token.hash").write_text("this is not a hash")
    result = meterlink("run", "--config", str(write_config(tmp_path / "m.toml", state, free_port())), timeout=20)
    assert result.returncode == 2
    assert one_line(result.stderr) == (f"meterlink: credentials file {state / 'token.hash'} is damaged; set a new token "
                                       "with `meterlink token --config FILE` (or adapter.token in the config)")


def test_a_device_key_of_the_wrong_size_is_one_line_and_the_service_still_serves(tmp_path: Path) -> None:
    """The meter keys cannot be used, the rest of the adapter can (item 6 says how it shows)."""
    state, port = tmp_path / "state", free_port()
    state.mkdir(mode=0o700)
    (state / "device.key").write_bytes(b"\x01" * 20)
    (state / "device.key").chmod(0o600)
    service = Running("run", "--config", str(write_config(tmp_path / "m.toml", state, port)))
    try:
        assert service.line().startswith("meterlink: serving")
    finally:
        _, code, stderr = service.stop()
    # Besides the key store's line: SIGTERM, and which Wi-Fi backend runs (issue 18).
    lines = [line for line in stderr.decode().splitlines() if "SIGTERM" not in line and " network: " not in line]
    assert len(lines) == 1 and "Traceback" not in stderr.decode()
    assert lines[0].endswith(f"key store unreadable: device key file {state / 'device.key'} is damaged: it must hold "
                             "exactly 32 bytes; meter_factreset clears it (the meter keys must then be set again "
                             "with meter_setkey)")
    assert code == 0


# --- the same kind of defect next to them ----------------------------------------------------------------


@pytest.mark.parametrize("meter", ["p1", "kaifa", "kamstrup"])
def test_a_simulator_on_a_busy_port_is_one_line(meter: str) -> None:
    with busy_port() as port:
        result = meterlink("simulate", meter, "--listen", f"tcp://127.0.0.1:{port}", timeout=20)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"meterlink: cannot listen on tcp://127.0.0.1:{port}: address already in use"


def test_diagrams_into_a_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    result = meterlink("diagrams", "--root", str(tmp_path / "plain" / "diagrams"))
    assert result.returncode == 2
    assert one_line(result.stderr) == f"meterlink: {tmp_path / 'plain' / 'diagrams'}: Not a directory"


def test_version() -> None:
    result = meterlink("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("meterlink 0.")


@pytest.mark.parametrize("soft, hard, expected_soft, short", [
    (300, 4000, 1256, False),   # raised as far as 1,000 links need
    (300, 900, 900, True),      # up to the hard limit, and a line saying so
    (2000, 4000, 2000, False),  # enough already: left alone
])
def test_a_gateway_raises_its_open_file_limit_for_its_links(soft: int, hard: int, expected_soft: int, short: bool) -> None:
    """1,000 links are 1,000 sockets; the usual soft limit is 1024."""
    code = ("import resource; from meterlink.service.startup import raise_descriptor_limit; "
            "line = raise_descriptor_limit(1000); "
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0]); print(line)")

    def limit() -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run([METERLINK[0], "-c", code], capture_output=True, text=True, preexec_fn=limit, check=True)
    new_soft, line = done.stdout.splitlines()
    assert int(new_soft) == expected_soft
    assert (line != "None") == short and (not short or "hard limit is 900" in line)
