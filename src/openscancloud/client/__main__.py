"""`python -m openscancloud.client ...`: the client commands alone (same as `openscan-cloud upload ...`), for
machines that only install the client."""

from __future__ import annotations

import typer

from openscancloud.client.cli import register

app = typer.Typer(name="openscan-cloud-client", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="OpenScan Cloud client: upload photos, follow processing, download the result.")
register(app)

if __name__ == "__main__":
    app()
