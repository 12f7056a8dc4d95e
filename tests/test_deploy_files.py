"""The deployment files say what the code does: every EVALSIGN_ variable compose.yaml sets
is a setting the service reads, the commands it runs exist, and the image serves only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from api.cli import build_parser
from models.settings import Settings

ROOT = Path(__file__).parents[1]


def test_compose_sets_only_settings_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
    environment = compose["x-evalsign"]["environment"]
    names = {name for name in environment if name.startswith("EVALSIGN_")}
    assert len(names) >= 5
    known = {f"EVALSIGN_{field.upper()}" for field in Settings.model_fields}
    assert names <= known, names - known


def test_compose_runs_commands_the_cli_has() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
    evalsign = [
        service["command"]
        for service in compose["services"].values()
        if isinstance(service.get("command"), list) and service["command"][0] == "evalsign"
    ]
    assert {command[1] for command in evalsign} == {"init", "worker"}
    for command in evalsign:
        parsed = build_parser().parse_args(command[1:])
        assert callable(parsed.handler), command
    replicas = [name for name, service in compose["services"].items() if name.startswith("api")]
    assert len(replicas) == 2
    upstream = (ROOT / "deploy" / "nginx.conf").read_text("utf-8")
    assert all(re.search(rf"server {name}:8000;", upstream) for name in replicas)


def test_the_image_serves_only_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    stages = re.findall(r"^FROM ", dockerfile, flags=re.M)
    assert len(stages) == 2  # build tools stay in the first stage
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "build-essential" not in final and "USER evalsign" in final
    assert re.search(r'^CMD \["evalsign", "serve"\]$', final, flags=re.M)
