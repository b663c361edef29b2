"""`uvicorn --factory asgi_entry:app`: the OpenScan Cloud app with settings from the OPENSCAN_* environment,
whatever version of `openscancloud` is first on PYTHONPATH (the load bench compares two versions this way)."""

from openscancloud.api.app import create_app
from openscancloud.settings import Settings


def app():  # type: ignore[no-untyped-def]
    return create_app(Settings())


def bare():  # type: ignore[no-untyped-def]
    """An ASGI app that answers every request `304` with an ETag and does nothing else: what uvicorn and the
    HTTP exchange alone cost, the floor under any endpoint's CPU per request."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'W/"0"')]})
        await send({"type": "http.response.body", "body": b""})

    return app
