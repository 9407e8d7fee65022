"""`smsgw keys`: keys made, listed and revoked against the configured database
(SQLite and MariaDB), the secret shown once and stored nowhere."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgw_core.keys import hash_secret, parse
from tests.mariadb import mariadb_database

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = Path(sys.executable).parent / "smsgw"


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
        return
    with mariadb_database("keys") as url:
        yield url


def smsgw(database_url: str, *args: str, level: str = "DEBUG",
          ) -> subprocess.CompletedProcess[str]:
    """Logging everything by default: the secret must be in none of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"SMSGW_DATABASE_URL": database_url, "SMSGW_LOG_LEVEL": level})
    return subprocess.run([str(CONSOLE_SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def dump(database_url: str, tmp_path: Path) -> bytes:
    """Every byte the database holds: the SQLite file, or mariadb-dump's output."""
    if database_url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in tmp_path.glob("keys.db*"))
    name = database_url.rsplit("/", 1)[1]
    host = os.environ.get("SMSGW_TEST_MARIADB_HOST", "127.0.0.1")
    port = os.environ.get("SMSGW_TEST_MARIADB_PORT", "3306")
    user = os.environ.get("SMSGW_TEST_MARIADB_USER", "root")
    tool = next((t for t in ("mariadb-dump", "mysqldump")
                 if subprocess.run(["which", t], capture_output=True).returncode == 0), None)
    if tool is None:
        pytest.fail("no mariadb-dump or mysqldump to read the database with")
    return subprocess.run([tool, "-h", host, "-P", port, "-u", user, "--hex-blob", name],
                          capture_output=True, check=True, timeout=60).stdout


def test_a_key_is_shown_once_listed_without_its_secret_and_revoked(
    database_url: str, tmp_path: Path
) -> None:
    made = smsgw(database_url, "keys", "create", "--customer", "42", "--name", "shop one")
    admin = smsgw(database_url, "keys", "create", "--admin", "--name", "ops")
    assert made.returncode == 0 and admin.returncode == 0, made.stderr + admin.stderr
    key = made.stdout.strip().splitlines()[-1]
    presented = parse(key)
    assert presented is not None, made.stdout
    listed = smsgw(database_url, "keys", "list")
    mine = smsgw(database_url, "keys", "list", "--customer", "42")
    assert listed.returncode == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()[1:]]
    first = rows[0]
    assert (first[0], first[1], first[2], first[5]) == (presented.key_id, "shop one", "42", "-")
    assert [r[2] for r in rows] == ["42", "admin"]
    assert len(mine.stdout.splitlines()) == 2

    revoked = smsgw(database_url, "keys", "revoke", presented.key_id)
    again = smsgw(database_url, "keys", "revoke", presented.key_id)
    after = smsgw(database_url, "keys", "list", "--customer", "42").stdout.splitlines()[1]
    assert revoked.returncode == 0 and again.returncode == 1, revoked.stderr + again.stderr
    assert after.split("\t")[5] != "-"

    # Neither the database nor anything the commands wrote holds the secret; the
    # database holds its hash.
    stored = dump(database_url, tmp_path)
    assert presented.secret.encode() not in stored
    assert hash_secret(presented.secret).encode() in stored
    said = "".join(r.stdout + r.stderr for r in (admin, listed, mine, revoked, again))
    said += made.stderr
    assert presented.secret not in said
    assert made.stdout.count(presented.secret) == 1


def test_bad_key_commands_are_one_line_and_exit_2(database_url: str) -> None:
    for args in (["keys", "create", "--customer", "0"], ["keys", "create", "--customer", "1",
                                                        "--name", "n" * 101]):
        refused = smsgw(database_url, *args, level="INFO")
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, (
            args, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert smsgw(database_url, "keys", "list").stdout.splitlines()[1:] == []
