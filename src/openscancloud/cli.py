"""The `openscan-cloud` command: one Typer app, each package contributes its own commands.

Commands are registered by the package that owns them (`engine.cli`, `service_cli`, `client.cli`), so this
file only wires them together. Each `register` keeps heavy imports inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import typer

from openscancloud import service_cli
from openscancloud.client import cli as client_cli
from openscancloud.engine import cli as engine_cli

app = typer.Typer(
    name="openscan-cloud",
    help="OpenScan Cloud: upload photos, get a textured 3D model back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

engine_cli.register(app)
service_cli.register(app)
client_cli.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
