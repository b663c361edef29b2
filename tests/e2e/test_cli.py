"""`openscan-cloud tokens …` admin commands (section G): exact names, `--json` output, clear errors."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from openscancloud import service_cli


@pytest.fixture
def cli(tmp_path):
    app = typer.Typer()
    service_cli.register(app)
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        split = args.index("--") if "--" in args else len(args)  # options go before a `--` separator
        result = runner.invoke(app, [*args[:split], "--data-dir", str(tmp_path / "data"), *args[split:]],
                               catch_exceptions=False)  # a crash is a crash, not an exit code
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_tokens_lifecycle(cli):
    public = json.loads(cli("tokens", "public", "--json").stdout)
    assert public["token"].startswith("pub_") and public["kind"] == "public"
    assert cli("tokens", "public").stdout.strip() == public["token"]  # same token every time

    made = json.loads(cli("tokens", "create", "--kind", "private", "--forename", "Ada", "--surname", "Lovelace",
                          "--email", "ada@example.org", "--credit-gb", "3", "--limit-photos", "50",
                          "--limit-filesize", "1000000", "--json").stdout)
    assert made["token"].startswith("prv_") and made["credit_gb"] == 3.0 and made["limit_photos"] == 50
    plain = cli("tokens", "create", "--kind", "worker", "--label", "gpu-box").stdout.strip()
    assert plain.startswith("wrk_") and "\n" not in plain

    listing = json.loads(cli("tokens", "list", "--json").stdout)
    assert [t["kind"] for t in listing] == ["public", "private", "worker"]
    assert all("token" not in t for t in listing)  # secrets are never stored, so never listed
    assert "Ada Lovelace <ada@example.org>" in cli("tokens", "list").stdout

    assert "credit now 5.500 GB" in cli("tokens", "topup", str(made["id"]), "2.5").stdout
    shown = json.loads(cli("tokens", "show", made["token"], "--json").stdout)
    assert [e["kind"] for e in shown["ledger"]] == ["grant", "topup"] and shown["credit_gb"] == 5.5
    assert "topup" in cli("tokens", "show", made["hint"]).stdout

    cli("tokens", "revoke", str(made["id"]))
    assert json.loads(cli("tokens", "show", str(made["id"]), "--json").stdout)["status"] == "revoked"


def test_cli_errors_are_one_sentence_and_exact_exit_codes(cli):
    r = cli("tokens", "create", "--kind", "private", "--forename", "A", ok=False)
    assert r.exit_code == 2 and "needs --forename, --surname and --email" in r.output  # usage
    r = cli("tokens", "create", "--kind", "public", ok=False)
    assert r.exit_code == 2 and "tokens public" in r.output
    r = cli("tokens", "show", "999", ok=False)
    assert r.exit_code == 1 and "No token matches" in r.output
    worker = cli("tokens", "create", "--kind", "worker").stdout.strip()
    r = cli("tokens", "topup", worker, "5", ok=False)
    assert r.exit_code == 1 and "Only private tokens" in r.output
    private = json.loads(cli("tokens", "create", "--kind", "private", "--forename", "A", "--surname", "B",
                             "--email", "a@b.org", "--credit-gb", "2", "--json").stdout)
    for amount in ("-1", "0"):  # `--` so that "-1" is the amount, not an unknown option
        r = cli("tokens", "topup", str(private["id"]), "--", amount, ok=False)
        assert r.exit_code == 1, r.output
        assert "The top-up amount must be a positive number of GB." in r.output
    shown = json.loads(cli("tokens", "show", str(private["id"]), "--json").stdout)
    assert shown["credit_gb"] == 2.0 and [e["kind"] for e in shown["ledger"]] == ["grant"]  # nothing booked
