"""docker-compose.yml's Oracle service against docs/oracle.md and sql/oracle/00_create_user.sql.

The image creates APP_USER itself (DB_DEVELOPER_ROLE, unlimited quota), so the least-privilege
script must create a user of another name there, run by hand as SYSTEM in the PDB, from a
mount that is not the image's init folder (which runs scripts as SYS in the CDB root, with
no terminal for the password prompt). Issue 16 items 4 and 5: these are the rules checked.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="pip install pyyaml (in the dev extra)")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from oracle_fixtures import IMAGE as TEST_IMAGE  # noqa: E402

INIT_FOLDERS = ("/container-entrypoint-initdb.d", "/container-entrypoint-startdb.d")


def default(value: str) -> str:
    """``${VAR:-default}`` → default (compose's interpolation without the environment)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def oracle_service() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service: dict[str, Any] = compose["services"]["oracle"]
    return service


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host folder of the service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = (ROOT / source).resolve()
    return found


def doc_commands(fragment: str) -> list[str]:
    """Commands (code lines, docs and compose comments) that mention ``fragment``."""
    lines = (ROOT / "docs" / "oracle.md").read_text().splitlines()
    lines += [line.lstrip("# ") for line in (ROOT / "docker-compose.yml").read_text().splitlines()]
    return [line.strip().split("  #")[0] for line in lines
            if fragment in line and re.match(r"\s*(sqlplus|docker compose|STREAMSCORE_)", line.lstrip("# "))]


def test_no_script_is_mounted_where_the_image_runs_it_as_sys() -> None:
    for target in mounts(oracle_service()):
        assert not target.startswith(INIT_FOLDERS), target


def test_the_documented_least_privilege_commands_work_with_the_compose_file() -> None:
    service = oracle_service()
    app_user = default(service["environment"]["APP_USER"])
    commands = doc_commands("00_create_user.sql")
    in_compose = [c for c in commands if c.startswith("docker compose exec")]
    assert in_compose and len(commands) > len(in_compose)  # a compose way and a plain sqlplus way
    for command in commands:
        words = shlex.split(command)
        script = next(word for word in words if word.startswith("@"))[1:]
        assert script.endswith("00_create_user.sql")
        user = words[words.index("@" + script) + 1]  # the script's argument: the new user
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,29}", user), command
        connect = next(word for word in words if word.startswith("system@"))
        assert connect.endswith("/FREEPDB1"), "run it in the PDB, not the CDB root"
        if command.startswith("docker compose exec"):
            assert words[3] == "oracle" and words[3] in yaml.safe_load(
                (ROOT / "docker-compose.yml").read_text())["services"]
            assert user != app_user, "the image created APP_USER already: ORA-01920"
            folder = next(host for target, host in mounts(service).items() if script.startswith(target + "/"))
            assert (folder / Path(script).name).is_file()
        else:
            assert (ROOT / script).is_file()


def test_the_documented_urls_name_users_that_exist() -> None:
    service = oracle_service()
    app_user = default(service["environment"]["APP_USER"])
    created = {shlex.split(c)[-1] for c in doc_commands("00_create_user.sql") if c.startswith("docker")}
    text = (ROOT / "docs" / "oracle.md").read_text() + (ROOT / "docker-compose.yml").read_text()
    users = set(re.findall(r"oracle://(\w+)@localhost:1521/FREEPDB1", text))
    assert app_user in users and users <= {app_user} | created
    assert service["ports"] == ["1521:1521"]


def test_the_script_takes_the_user_as_its_argument_and_refuses_an_existing_one() -> None:
    script = (ROOT / "sql" / "oracle" / "00_create_user.sql").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    assert "DEFINE app_user = &1" in code
    assert code.index("exists already") < code.index("CREATE USER")
    assert code.index("CDB$ROOT") < code.index("CREATE USER")
    assert code.index("WHENEVER SQLERROR EXIT FAILURE") < code.index("DECLARE")


def test_tests_use_slim_and_benchmarks_are_told_to_use_full() -> None:
    service = oracle_service()
    image = default(service["image"])
    assert image == TEST_IMAGE and "slim" in image
    full = image.replace("slim", "full")
    docs = (ROOT / "docs" / "oracle.md").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    tag = full.split(":")[1]
    assert f"STREAMSCORE_ORACLE_IMAGE_TAG={tag}" in docs and f"STREAMSCORE_ORACLE_IMAGE_TAG={tag}" in compose
    assert "MKL" in docs and "netlib" in docs
