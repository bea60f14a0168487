"""A fake `nmcli` on PATH that records its calls and plays back real nmcli outputs (tests/data/nmcli).

`FakeNmcli(directory)` writes an executable `nmcli` into `directory`; `rule(match, ...)` says what a
call whose arguments contain `match` prints and exits with (the first matching rule wins, later
rules are added in front); unmatched calls succeed silently. Every call is logged with its
arguments and what it read on stdin, so a test can check that a password went through stdin only.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "nmcli"

SCRIPT = """#!{python}
import json, sys
scenario = json.load(open({scenario!r}))
args = sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(scenario["log"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
joined = " ".join(args)
for rule in scenario["rules"]:
    if rule["match"] in joined:
        sys.stdout.write(rule["stdout"])
        sys.stderr.write(rule["stderr"])
        sys.exit(rule["returncode"])
"""


class FakeNmcli:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scenario = directory / "scenario.json"
        self.log = directory / "calls.jsonl"
        self.rules: list[dict] = []
        self._save()
        path = directory / "nmcli"
        path.write_text(SCRIPT.format(python=sys.executable, scenario=str(self.scenario)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def rule(self, match: str, stdout: str = "", stderr: str = "", returncode: int = 0) -> None:
        """`stdout` / `stderr` name a file of tests/data/nmcli, or are "" for nothing."""
        text = {name: (DATA / value).read_text() if value else "" for name, value in (("o", stdout), ("e", stderr))}
        self.rules.insert(0, {"match": match, "stdout": text["o"], "stderr": text["e"], "returncode": returncode})
        self._save()

    def rule_text(self, match: str, stdout: str, returncode: int = 0) -> None:
        self.rules.insert(0, {"match": match, "stdout": stdout, "stderr": "", "returncode": returncode})
        self._save()

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def path(self) -> str:
        return f"{self.directory}{os.pathsep}{os.environ.get('PATH', '')}"

    def _save(self) -> None:
        self.scenario.write_text(json.dumps({"log": str(self.log), "rules": self.rules}))
