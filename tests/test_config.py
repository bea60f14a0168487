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
    ],
)
def test_mistakes_name_the_key(document, message):
    with pytest.raises(ConfigError) as error:
        parse_config(document, "test.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("test.toml: ")


def test_the_example_dlms_link_loads_when_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    kamstrup = text[text.index("# [[link]]\n# name = \"kamstrup\""):]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in kamstrup.splitlines())
    config = tmp_path / "dlms.toml"
    config.write_text(uncommented, encoding="utf-8")
    config.chmod(0o600)
    (link,) = load_config(config).link
    assert link.kind == "dlms" and len(link.objects) == 9 and link.poll_interval == 10


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
