"""`uvicorn --factory asgi_entry:app`: the OpenScan Cloud app with settings from the OPENSCAN_* environment,
whatever version of `openscancloud` is first on PYTHONPATH (the load bench compares two versions this way)."""

from openscancloud.api.app import create_app
from openscancloud.settings import Settings


def app():  # type: ignore[no-untyped-def]
    return create_app(Settings())
