"""Chatting with a tenant's agents from Python: without a model configured, the answer
says so plainly and offers the tenant's documents; a repeated source id is a replay."""

import os
import subprocess
import tempfile

import aegis
import pytest

from test_tenants import cli, database_url  # noqa: F401 (fixture)


def test_chat_without_a_model_offers_documents(database_url):  # noqa: F811
    cli(database_url, "tenant", "create", "acme", "--tier", "pro")
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "refunds.md"), "w") as f:
            f.write("# Refunds\n\nCustomers may return goods within 14 days for a full refund.\n")
        cli(database_url, "ingest", "acme", folder)
    platform = aegis.Platform(database_url=database_url)
    reply = platform.chat("acme", "how long do refunds take?", agent="kai", source_id="py-1")
    assert reply.outcome == "no_model"
    assert reply.agent == "kai"
    assert "No language model is configured" in reply.text
    assert reply.citations[0][0] == "refunds.md"
    again = platform.chat("acme", "how long do refunds take?", agent="kai", source_id="py-1")
    assert again.replayed and again.run_id == reply.run_id
    with pytest.raises(aegis.AgentError):
        platform.chat("acme", "hi", agent="ghost")
    with pytest.raises(aegis.TenantError):
        platform.chat("nope", "hi")
    shown = subprocess.run(
        [os.environ["AEGIS_BIN"], "--database-url", database_url, "audit", "show", "acme", reply.run_id],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "no_model" in shown
