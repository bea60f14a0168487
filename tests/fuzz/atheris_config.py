"""atheris harness: the TOML configuration file (seed: meterlink.example.toml with its links).

The input is written to a file in /dev/shm and loaded as `meterlink run` loads it: a Config, or a
ConfigError whose every line names the file (and the key); anything else is a finding.
"""

import atheris

with atheris.instrument_imports(include=["meterlink"]):
    import os
    import tempfile
    from pathlib import Path

    from common import run
    from meterlink.service.config import ConfigError, load_config
    from test_fuzz_config import SEED

PATH = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)) / "meterlink.toml"


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        load_config(PATH)
    except ConfigError as error:
        assert all(line.startswith(f"{PATH}: ") for line in str(error).splitlines()), str(error)


if __name__ == "__main__":
    run("config", one_input, [SEED.encode("utf-8"), Path(__file__).parent.parent.parent.joinpath("meterlink.example.toml").read_bytes()])
