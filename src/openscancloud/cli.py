"""The `openscan-cloud` command: one Typer app, each package contributes its own commands.

Commands are registered by the package that owns them (`engine.cli`, `service_cli`, `client.cli`), so this
file only wires them together and stays readable.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="openscan-cloud",
    help="OpenScan Cloud: upload photos, get a textured 3D model back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    from openscancloud.engine import cli as engine_cli

    engine_cli.register(app)
    try:
        from openscancloud import service_cli
    except ImportError:  # server not installed in this build
        pass
    else:
        service_cli.register(app)
    try:
        from openscancloud.client import cli as client_cli
    except ImportError:
        pass
    else:
        client_cli.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
