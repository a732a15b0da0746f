"""The Python package sees what the CLI did: tenants created by `aegis tenant create` are
listed by `aegis.Platform(...).list_tenants()` on the same database."""

import os
import subprocess
import uuid

import psycopg
import pytest

import aegis


@pytest.fixture()
def database_url():
    """A fresh database on the throwaway cluster started by scripts/test.sh."""
    base = os.environ["AEGIS_TEST_DATABASE_URL"]
    name = "py_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def cli(url, *args):
    return subprocess.run(
        [os.environ["AEGIS_BIN"], "--database-url", url, *args],
        check=True,
        capture_output=True,
        text=True,
    )


def test_lists_tenants_created_by_the_cli(database_url):
    cli(database_url, "tenant", "create", "acme", "--tier", "pro", "--name", "Acme Inc")
    cli(database_url, "tenant", "create", "globex", "--tier", "free")
    platform = aegis.Platform(database_url=database_url)
    tenants = platform.list_tenants()
    assert [(t.id, t.tier, t.name) for t in tenants] == [
        ("acme", "pro", "Acme Inc"),
        ("globex", "free", "globex"),
    ]
    assert tenants[0].schema_name == "tenant_acme"
    assert tenants[0].role_name.endswith("_t_acme")
    assert tenants[0].schema_version >= 1


def test_errors_are_python_exceptions(database_url):
    with pytest.raises(aegis.DatabaseError):
        aegis.Platform(database_url=database_url.rsplit("/", 1)[0] + "/no_such_database")
    with pytest.raises(aegis.ConfigError):
        aegis.Platform(database_url=database_url, config_file="/nonexistent/aegis.toml")
    assert issubclass(aegis.TenantError, aegis.AegisError)
