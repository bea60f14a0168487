"""The TOML configuration: the example loads, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterlink.service.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parent.parent / "meterlink.example.toml"


def test_the_annotated_example_loads():
    config = load_config(EXAMPLE)
    assert [link.name for link in config.link] == ["p1"]
    assert config.link[0].serial is not None and config.link[0].data_request == "rts"
    assert config.http.fetch_hosts == [] and config.http.open_reads == []


@pytest.mark.parametrize(
    "document, message",
    [
        ({"link": [{"name": "p1", "kind": "p1", "port": "/dev/ttyUSB0", "baud": "fast"}]}, "link[0].baud"),
        ({"link": [{"name": "p1", "kind": "zigbee", "port": "/dev/ttyUSB0"}]}, "link[0].kind"),
        ({"link": [{"name": "p1", "kind": "p1", "port": "COM3"}]}, "link[0].port: expected a device path"),
        ({"link": [{"name": "p1", "kind": "p1", "port": "tcp://nohost"}]}, "link[0].port"),
        ({"link": [{"name": "p1", "kind": "p1"}]}, "link[0]: port: required"),
        ({"link": [{"name": "a", "kind": "p1", "port": "/dev/x"}, {"name": "a", "kind": "p1", "port": "/dev/y"}]}, "repeated: a"),
        ({"http": {"listen": "8080"}}, "http.listen: expected HOST:PORT"),
        ({"http": {"open_reads": ["lan"]}}, "http.open_reads: 'lan' is not a network"),
        ({"http": {"lisen": "0.0.0.0:80"}}, "http.lisen: unknown key"),
        ({"supervisor": {"max_restarts": -1}}, "supervisor.max_restarts"),
        ({"adapter": {"token": "short"}}, "adapter.token"),
        ({"link": [{"name": "k", "kind": "dlms", "port": "/dev/x"}]}, "link[0]: objects: a dlms link polls at least one"),
        ({"link": [{"name": "k", "kind": "dlms", "port": "/dev/x", "objects": ["3:1.1.1.8.0:2x"]}]}, "link[0].objects: attribute"),
        ({"link": [{"name": "k", "kind": "dlms", "port": "/dev/x", "objects": ["1:1.1.0.0.1.255:2"], "framing": "ip"}]},
         "link[0].framing"),
        ({"link": [{"name": "k", "kind": "dlms", "port": "/dev/x", "objects": ["1:1.1.0.0.1.255:2"], "client_sap": 300}]},
         "link[0].client_sap"),
        ({"link": [{"name": "p1", "kind": "p1", "port": "/dev/x", "password": "12345"}]}, "password: only for kind"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "unit": 248}]}, "link[0].unit"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "unti": 42}]}, "link[0].unti: unknown key"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "poll_interval": 0}]}, "link[0].poll_interval"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "parity": "X"}]}, "link[0].parity"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "push_interval": 1}]}, "push_interval: not for kind = \"bsm\""),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "objects": ["1:1.1.0.0.1.255:2"]}]}, "objects: only for kind = \"dlms\""),
        ({"link": [{"name": "p1", "kind": "p1", "port": "/dev/x", "unit": 42}]}, "unit: only for kind = \"bsm\""),
        ({"link": [{"name": "p1", "kind": "p1", "port": "/dev/x", "poll_interval": 5}]}, "poll_interval: only for kind"),
        ({"link": [{"name": "n", "kind": "mep", "port": "/dev/x", "poll_interval": 2}]}, "poll_interval: at least 3 s for kind = \"mep\""),
        ({"link": [{"name": "n", "kind": "mep", "port": "/dev/x", "push_interval": 1}]}, "push_interval: not for kind = \"mep\""),
        ({"link": [{"name": "n", "kind": "mep", "port": "/dev/x", "energy_unit": 5}]}, "link[0].energy_unit"),
        ({"link": [{"name": "n", "kind": "mep", "port": "/dev/x", "key": "00" * 16}]}, "meter keys are not kept in this file"),
        ({"link": [{"name": "c", "kind": "bsm", "port": "/dev/x", "energy_unit": 10}]}, "energy_unit: only for kind = \"mep\""),
        # A quoted TOML key is shown quoted: a newline in it must not fake a line of the report (found by fuzzing).
        ({"adapter": {"\nx: y": 1}}, 'adapter."\\nx: y": unknown key'),
        ({"mqtt": {"": 1, "dé jà": 2}}, 'mqtt."": unknown key\ntest.toml: mqtt."d\\u00e9 j\\u00e0": unknown key'),
    ],
)
def test_mistakes_name_the_key(document, message):
    with pytest.raises(ConfigError) as error:
        parse_config(document, "test.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("test.toml: ")


def _block(text: str, start: str) -> str:
    """A commented [[link]] of the example, up to the blank line after it."""
    begin = text.index(start)
    end = text.find("\n\n", begin)
    return text[begin:end if end >= 0 else None]


def test_the_example_dlms_link_loads_when_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    kamstrup = _block(text, "# [[link]]\n# name = \"kamstrup\"")
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in kamstrup.splitlines())
    config = tmp_path / "dlms.toml"
    config.write_text(uncommented, encoding="utf-8")
    config.chmod(0o600)
    (link,) = load_config(config).link
    assert link.kind == "dlms" and len(link.objects) == 9 and link.poll_interval == 10


def test_the_example_bsm_link_loads_when_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    charger = _block(text, "# [[link]]\n# name = \"charger\"")
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in charger.splitlines())
    config = tmp_path / "bsm.toml"
    config.write_text(uncommented, encoding="utf-8")
    (link,) = load_config(config).link
    assert link.kind == "bsm" and link.unit == 42 and link.poll_interval == 5


def test_a_bsm_link_defaults_to_the_factory_settings_and_takes_overrides():
    from meterlink.actors.bsm import BSM_POLL_INTERVAL
    from meterlink.service.run import bsm_link

    (plain, tuned) = parse_config({"link": [
        {"name": "a", "kind": "bsm", "port": "tcp://127.0.0.1:502"},
        {"name": "b", "kind": "bsm", "port": "/dev/ttyUSB3", "unit": 7, "poll_interval": 2, "baud": 9600, "parity": "N"},
    ]}).link
    link = bsm_link(plain)
    assert (link.plan.unit, link.plan.poll_interval) == (42, BSM_POLL_INTERVAL)
    assert (link.serial.baudrate, link.serial.bytesize, link.serial.parity, link.serial.stopbits) == (19200, 8, "E", 1)
    link = bsm_link(tuned)
    assert (link.plan.unit, link.plan.poll_interval) == (7, 2)
    assert (link.serial.baudrate, link.serial.parity, link.serial.stopbits) == (9600, "N", 1)
    assert link.plan.snapshot is None and link.plan.time is None  # the service only reads; it never switches


def test_a_dlms_password_is_neither_echoed_nor_shown(tmp_path, caplog):
    document = {"link": [{"name": "k", "kind": "dlms", "port": "/dev/x", "objects": ["1:1.1.0.0.1.255:2"],
                          "password": "pa55word-lls"}]}
    (link,) = parse_config(document).link
    assert "pa55word-lls" not in repr(link) and "pa55word-lls" not in str(link)
    config = tmp_path / "open.toml"
    config.write_text('[[link]]\nname = "k"\nkind = "dlms"\nport = "/dev/x"\nobjects = ["1:1.1.0.0.1.255:2"]\n'
                      'password = "pa55word-lls"\n', encoding="utf-8")
    config.chmod(0o644)
    load_config(config)
    assert "readable by group or others" in caplog.text and "pa55word-lls" not in caplog.text


def test_a_short_token_is_not_echoed():
    with pytest.raises(ConfigError) as error:
        parse_config({"adapter": {"token": "s3cr3t"}})
    assert "s3cr3t" not in str(error.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[link\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["key", "auth_key"])
def test_a_meter_key_in_a_link_points_to_meter_setkey(name):
    document = {"link": [{"name": "mbus", "kind": "mbus", "port": "/dev/ttyAMA0", name: "36C66639E48A8CA4D6BC8B282A793BBB"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(document, "m.toml")
    assert str(info.value) == (f"m.toml: link[0].{name}: unknown key: meter keys are not kept in this file; set them "
                               'with meter_setkey (see README, "Setting the meter key")')
    assert "36C66639" not in str(info.value)


def test_the_readme_says_how_to_set_the_meter_key():
    """The curl example of the README's section that the config's answer points to is a valid command."""
    import json
    import re

    from meterlink.service.meterextension import MeterSetKeyCommand

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Setting the meter key")[1].split("\n## ")[0]
    body = re.search(r"-d '(\{.*?\})'", section).group(1)
    command = MeterSetKeyCommand.model_validate(json.loads(body))
    assert command.link == "mbus" and len(command.key.get_secret_value()) == 32


@pytest.mark.parametrize("section", ["## Configuration", "## BSM-WS36A signing meter"])
def test_the_readmes_toml_blocks_load(section):
    import tomllib

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split(section, 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(block), "README")
    assert "bsm" in [link.kind for link in config.link]


def test_the_example_mep_link_loads_when_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    nes = _block(text, "# [[link]]\n# name = \"nes\"")
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in nes.splitlines())
    config = tmp_path / "mep.toml"
    config.write_text(uncommented, encoding="utf-8")
    (link,) = load_config(config).link
    assert link.kind == "mep" and link.poll_interval == 5 and link.energy_unit == 1


def test_a_mep_link_defaults_to_9600_8n1_and_keeps_asking_a_silent_meter():
    from meterlink.actors.mep import MEP_POLL_INTERVAL
    from meterlink.service.run import mep_link

    (plain, tuned) = parse_config({"link": [
        {"name": "a", "kind": "mep", "port": "tcp://127.0.0.1:5006"},
        {"name": "b", "kind": "mep", "port": "/dev/ttyUSB4", "poll_interval": 10, "energy_unit": 100, "baud": 4800},
    ]}).link
    link = mep_link(plain)
    assert (link.poll_interval, link.energy_unit, link.patient) == (MEP_POLL_INTERVAL, 1, True)
    assert (link.serial.baudrate, link.serial.bytesize, link.serial.parity, link.serial.stopbits) == (9600, 8, "N", 1)
    link = mep_link(tuned)
    assert (link.poll_interval, link.energy_unit, link.serial.baudrate) == (10, 100, 4800)
    assert link.plan(bytes(20)).key == bytes(16)
