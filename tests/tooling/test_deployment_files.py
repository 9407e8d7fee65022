"""No Docker engine runs here: check the compose file and Dockerfile hold together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_declares_the_production_shape() -> None:
    services = compose()["services"]
    assert {"mariadb", "rabbitmq", "migrate", "api", "relay", "worker",
            "operator-a", "operator-b"} <= set(services)
    assert "15672:15672" in services["rabbitmq"]["ports"]  # the management UI
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.10-management")


def test_every_smsgw_service_runs_a_real_cli_command_with_valid_settings() -> None:
    services = compose()["services"]
    smsgw = {name: s for name, s in services.items() if s.get("image") == "smsgw:latest"}
    assert set(smsgw) == {"migrate", "api", "relay", "worker", "webhooks", "operator-a",
                          "operator-b"}
    for name, service in smsgw.items():
        command = service["command"]
        out = subprocess.run(
            [sys.executable, "-m", "smsgw_app.cli", command[0], "--help"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, (name, out.stderr)
        for flag in (arg for arg in command[1:] if arg.startswith("--")):
            assert flag in out.stdout, (name, flag)
    env = services["api"]["environment"]
    from smsgw_app.config import Settings

    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert not settings.embedded_bus
    assert [o.name for o in settings.operators] == ["A", "B"]
    operator_ports = {s["command"][-1] for n, s in smsgw.items() if n.startswith("operator")}
    assert {o.url.rsplit(":", 1)[1] for o in settings.operators} == operator_ports


def test_split_processes_wait_for_the_migration_and_the_broker() -> None:
    services = compose()["services"]
    for name in ("api", "relay", "worker", "webhooks"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["rabbitmq"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["mariadb"]["condition"] == "service_healthy"


def test_the_dockerfile_installs_the_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert "pip install ." in dockerfile
    assert 'ENTRYPOINT ["smsgw"]' in dockerfile
    for path in ("pyproject.toml", "README.md", "src"):
        assert (ROOT / path).exists()
