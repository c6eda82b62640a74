"""The production path: ``docker-compose.yml``, ``.env.example``, the ``Dockerfile``.

The compose file is checked as Compose itself reads it: ``docker compose config`` (client
and compose plugin only, no engine) resolves the interpolation, anchors and defaults, and
its JSON is what the tests look at. Those tests skip, saying why, where the client or its
compose plugin is missing; that no setting has a default in the compose file is also
checked on its text, without docker. No engine runs here, so the Dockerfile is checked by
parsing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from provisioner.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

ROLES = ("node-api", "bridge", "service", "simulator", "retrain")
"""Services that run a ``provisioner`` command and get the settings."""
REQUIRED = ("redis", "postgres", "mlflow", *ROLES)
WIRED = {
    "home": "/data",
    "redis_url": "redis://redis:6379/0",
    "mlflow_tracking_uri": "http://mlflow:5000",
    "node_api_url": "http://node-api:7777",
    "bridge": False,
}
"""The only settings the compose file gives a value: the others are passed through, so that
their defaults are written once, in the code."""
SECRET = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY|API_KEY")
KEEP_ENV = ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST", "DOCKER_CONTEXT", "TMPDIR")
"""Only these reach `docker compose`: a REDIS_URL exported for the tests must not leak in."""


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"PROVISIONER_{field.upper()}"


SETTINGS_ENV = {env_name(field): field for field in Settings.model_fields}


# -- docker compose config ------------------------------------------------------------------


def compose_command() -> list[str]:
    """``docker compose`` or a v2 ``docker-compose``; skips the test when neither runs."""
    candidates: list[list[str]] = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    if not candidates:
        pytest.skip("the docker client is not on PATH: `docker compose config` not run")
    for command in candidates:
        try:
            probe = subprocess.run(
                [*command, "version", "--short"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=clean_env(),
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            return command
    pytest.skip(
        "the docker client is here but not Compose v2 (no `docker compose` plugin, no "
        "`docker-compose` v2): `docker compose config` not run"
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in KEEP_ENV}


def compose_config(env_file: Path, *profiles: str) -> dict[str, Any]:
    """The compose model as ``docker compose config`` resolves it, with only ``env_file``."""
    command = compose_command()
    selected = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [
            *command,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(env_file),
            *selected,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),
    )
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def config(empty_env_file: Path) -> dict[str, Any]:
    """Defaults only: no .env, no variable from the shell."""
    return compose_config(empty_env_file, "retrain")


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = config["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env: dict[str, str | None] = service.get("environment") or {}
    return env


def healthcheck_text(service: dict[str, Any]) -> str:
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), "health check disabled"
    test = check.get("test")
    assert test, "no health check"
    return " ".join(test) if isinstance(test, list) else str(test)


def settings_from(
    env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings as a container with ``env`` would read them (nothing else set)."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return Settings()


def cli_commands() -> set[str]:
    """The subcommands of ``provisioner``."""
    import typer.main

    from provisioner.cli import app

    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return set(group.commands)


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in REQUIRED if name not in services]
    assert not missing, f"docker-compose.yml lacks {missing}"


def test_redis_and_mlflow_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    redis_check = healthcheck_text(services["redis"])
    assert "redis-cli" in redis_check and "ping" in redis_check
    assert "/health" in healthcheck_text(services["mlflow"])
    assert "pg_isready" in healthcheck_text(services["postgres"])
    assert "/healthz" in healthcheck_text(services["service"])
    assert "7777" in healthcheck_text(services["node-api"])


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        depends = services[name].get("depends_on") or {}
        return {target: spec["condition"] for target, spec in depends.items()}

    healthy = "service_healthy"
    assert conditions("service") == {
        "redis": healthy,
        "mlflow": healthy,
        "node-api": healthy,
        "bridge": "service_started",
    }
    for name in ("node-api", "bridge", "simulator"):
        assert conditions(name).get("redis") == healthy, name
    assert conditions("simulator").get("bridge") == "service_started"
    assert conditions("retrain") == {"redis": healthy, "mlflow": healthy}
    # A service waited on as healthy must have a health check, or `up` never gets past it.
    for name in services:
        for target, condition in conditions(name).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition == healthy:
                healthcheck_text(services[target])


def test_retrain_is_a_job_under_its_profile(
    services: dict[str, dict[str, Any]], empty_env_file: Path
) -> None:
    retrain = services["retrain"]
    assert retrain.get("profiles") == ["retrain"]
    assert retrain["command"] == ["retrain", "--when-degraded"]
    assert retrain.get("restart", "no") == "no"
    assert "retrain" not in compose_config(empty_env_file)["services"], "runs without profile"
    for name in REQUIRED:
        if name != "retrain":
            assert not services[name].get("profiles"), f"{name} would not start by default"
            assert services[name].get("restart") in ("unless-stopped", "always"), name


def test_roles_run_real_commands_of_one_image(services: dict[str, dict[str, Any]]) -> None:
    commands = cli_commands()
    image = services["service"]["image"]
    for name in ROLES:
        service = services[name]
        assert service["image"] == image, f"{name} runs another image"
        assert service.get("build"), f"{name} cannot be built"
        assert service.get("entrypoint") is None, f"{name} overrides the `provisioner` entrypoint"
        assert service["command"][0] in commands, f"{name}: {service['command']}"
    assert services["service"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    node_api = services["node-api"]["command"]
    assert node_api[0] == "node-api" and "0.0.0.0" in node_api and "7777" in node_api
    assert services["bridge"]["command"] == ["bridge"]
    simulator = services["simulator"]["command"]
    assert simulator[0] == "simulate" and "--realtime" in simulator
    assert services["mlflow"]["image"] == image
    assert services["mlflow"]["entrypoint"] == ["mlflow", "server"]


def test_mlflow_keeps_its_store_in_postgres_and_artifacts_on_volumes(
    services: dict[str, dict[str, Any]],
) -> None:
    mlflow = services["mlflow"]
    args = dict(arg.removeprefix("--").partition("=")[::2] for arg in mlflow["command"])
    assert "serve-artifacts" in args
    assert args["host"] == "0.0.0.0" and args["port"] == "5000"
    mounts = {m["target"]: m for m in mlflow.get("volumes", [])}
    assert all(m["type"] == "volume" for m in mounts.values()), "not named volumes"
    assert args["artifacts-destination"] in mounts, "artifacts are not on a volume"
    store = urlsplit(args["backend-store-uri"])
    assert store.scheme == "postgresql" and store.hostname == "postgres", store.geturl()
    assert store.password is None, "a password in the command line"
    postgres = services["postgres"]
    env = environment(postgres)
    assert (store.username, store.path.lstrip("/")) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    assert store.port == 5432 and not postgres.get("ports"), "PostgreSQL is published"
    data = {m["target"]: m for m in postgres.get("volumes", [])}["/var/lib/postgresql/data"]
    assert data["type"] == "volume"
    assert (mlflow.get("depends_on") or {})["postgres"]["condition"] == "service_healthy"
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert any(m["target"] == "/data" and m["type"] == "volume" for m in redis["volumes"])


def test_ports_are_published_on_localhost_by_default(services: dict[str, dict[str, Any]]) -> None:
    published = {
        name: [(p["target"], p.get("host_ip")) for p in service.get("ports", [])]
        for name, service in services.items()
    }
    assert (8000, "127.0.0.1") in published["service"]
    assert (5000, "127.0.0.1") in published["mlflow"]
    assert not published["redis"], "Redis (no auth by default) is published on the host"


def test_roles_get_every_setting_by_its_real_name(services: dict[str, dict[str, Any]]) -> None:
    for name in ROLES:
        names = set(environment(services[name]))
        unknown = sorted(names - set(SETTINGS_ENV))
        missing = sorted(set(SETTINGS_ENV) - names)
        assert not unknown, f"{name}: not settings (typos are silently ignored): {unknown}"
        assert not missing, f"{name}: settings not passed through the environment: {missing}"


def compose_code() -> str:
    """``docker-compose.yml`` without its comments."""
    lines = COMPOSE.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def assert_wired(settings: Settings) -> None:
    for field, expected in WIRED.items():
        value = getattr(settings, field)
        assert (str(value) if isinstance(value, Path) else value) == expected, field


def test_compose_file_writes_no_default_of_a_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without docker: of the settings, only the wired ones have a value, the right one."""
    code = compose_code()
    interpolated = dict(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?-([^}]*)\}", code))
    written = {name: value for name, value in interpolated.items() if name in SETTINGS_ENV}
    literal = dict(re.findall(r"^  (PROVISIONER_HOME): (\S+)$", code, flags=re.MULTILINE))
    assert set(written | literal) == {env_name(field) for field in WIRED}
    assert_wired(settings_from(written | literal, monkeypatch, tmp_path))
    passed = set(re.findall(r"^  ([A-Z][A-Z0-9_]*):$", code, flags=re.MULTILINE))
    assert passed == set(SETTINGS_ENV) - set(written | literal), "not passed through"


@pytest.mark.parametrize("role", ROLES)
def test_settings_are_passed_through_but_the_wired_ones(
    role: str,
    services: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env = environment(services[role])
    settings = settings_from(env, monkeypatch, tmp_path)  # raises when a value is invalid
    assert_wired(settings)
    for field in Settings.model_fields:
        if field not in WIRED:
            assert env[env_name(field)] is None, f"{env_name(field)} has a value in compose"
    for field in ("redis_url", "mlflow_tracking_uri", "node_api_url"):
        host = urlsplit(str(getattr(settings, field))).hostname
        assert host in services, f"{env_name(field)} names {host}, not a compose service"


def test_node_api_boots_as_the_setting_says(services: dict[str, dict[str, Any]]) -> None:
    assert "--boot" not in services["node-api"]["command"], "it would override the setting"
    assert "PROVISIONER_NODE_BOOT" in environment(services["node-api"])


def test_no_secret_is_hard_coded(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET.search(key):
                assert value is None, f"{name}: {key} has a value in docker-compose.yml"
            if value and "://" in value:
                assert urlsplit(value).password is None, f"{name}: {key} holds a password"
    text = COMPOSE.read_text()
    assert not re.search(r"requirepass|--password|PASSWORD\s*[:=]\s*\S", text)


def test_env_example_lists_every_variable_commented_out() -> None:
    example = ENV_EXAMPLE.read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_code()))
    assert not interpolated - listed, f".env.example lacks {sorted(interpolated - listed)}"
    settings = set(SETTINGS_ENV) - {"PROVISIONER_HOME"}  # fixed to the image's volume
    assert not settings - listed, f".env.example lacks {sorted(settings - listed)}"
    assigned = re.findall(r"^[A-Z][A-Z0-9_]*=", example, flags=re.MULTILINE)
    assert not assigned, f"values repeat the defaults: {assigned}"


def test_env_example_gives_the_default_containers(services: dict[str, dict[str, Any]]) -> None:
    """Used as the .env, it gives the same containers as the defaults."""
    with_example = compose_config(ENV_EXAMPLE, "retrain")["services"]
    for name in REQUIRED:
        assert environment(with_example[name]) == environment(services[name]), name
        assert with_example[name].get("command") == services[name].get("command"), name


# -- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name, []))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def test_dockerfile_is_multi_stage_on_python_311_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    for stage in (builder, final):
        assert stage.base.startswith("python:3.11-slim"), stage.base
    copies = final.all("COPY")
    assert any("--from=builder" in c and "/opt/venv" in c for c in copies), copies


def test_builder_installs_every_package_of_the_project(stages: list[Stage]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {c.split()[0] for c in stages[0].all("COPY")}
    assert packages <= copied, f"the image would lack {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= {w for c in stages[0].all("COPY") for w in c.split()}


def test_final_stage_is_small(stages: list[Stage]) -> None:
    final = stages[-1]
    runs = " ".join(final.all("RUN"))
    for tool in ("build-essential", "gcc", "g++", "make", "curl", "wget"):
        assert tool not in runs.split(), f"final stage installs or runs {tool}"
    assert "pip install" not in runs, "the final stage installs packages: build them earlier"
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    for stage in stages:
        for run in stage.all("RUN"):
            for command in re.findall(r"pip (?:install|wheel)[^&;]*", run):
                assert "--no-cache-dir" in command, command
    ignored = DOCKERIGNORE.read_text().split()
    for path in (".venv", ".provisioner", "out", ".git", ".pytest_cache", ".mypy_cache"):
        assert path in ignored, f".dockerignore lacks {path}"


def test_final_stage_runs_as_a_fixed_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    user = final.last("USER").split(":")[0]
    assert user not in ("root", "0"), "runs as root"
    args = dict(a.partition("=")[::2] for a in final.all("ARG"))
    uid = args.get(user.strip("${}"), user) if user.startswith("$") else user
    assert uid.isdigit() and int(uid) > 0, f"USER {user}: not a fixed uid"
    useradd = next(r for r in final.all("RUN") if "useradd" in r)
    assert re.search(r"--uid\s+\"?(\$\{?UID\}?|" + uid + r")\"?", useradd), useradd
    assert args.get("UID") in (None, uid), "USER and the created uid differ"


def test_entrypoint_command_and_ports(stages: list[Stage]) -> None:
    final = stages[-1]
    assert exec_form(final.last("ENTRYPOINT")) == ["provisioner"]
    command = exec_form(final.last("CMD"))
    assert command == ["serve", "--host", "0.0.0.0"]
    assert command[0] in cli_commands()
    exposed = {p for e in final.all("EXPOSE") for p in e.split()}
    assert {"8000", "7777"} <= exposed
    env = " ".join(final.all("ENV"))
    assert "PROVISIONER_HOME=/data" in env
    assert any("/data" in v for v in final.all("VOLUME"))


def test_health_check_uses_python_on_healthz(stages: list[Stage]) -> None:
    check = stages[-1].last("HEALTHCHECK")
    assert check.split("CMD", 1)[1].strip().startswith('["python"'), check
    assert "http://127.0.0.1:8000/healthz" in check
    assert "curl" not in check and "wget" not in check
