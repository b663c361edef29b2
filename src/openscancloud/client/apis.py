"""The two ways to talk to a server, behind one small interface the `Client` uses.

* `LegacyApi` — the OpenScan Cloud protocol the scanner firmware speaks: `GET /<endpoint>?token=..&project=..`
  with HTTP Basic `openscan`/`free`. Works with this server and with the original service.
* `V1Api` — REST `/api/v1` with a Bearer token and problem+json errors. Projects have server IDs there; the SDK
  keeps addressing them by name and looks the ID up once. Projects made with a public token also have a key
  (`X-Project-Key` on every call); ids and keys are kept in `ProjectKeys` so later runs find them.

Both return the same JSON shapes (this server's v1 project resource is the legacy `getProjectInfo` answer), and
the signed part/result links are the same, so everything above this module is shared.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import httpx

from openscancloud.client.errors import ClientError, ProjectNotFound
from openscancloud.client.state import ProjectKeys
from openscancloud.client.transport import RetryPolicy, error_from_response, send_with_retry


class ServerApi(Protocol):
    def status(self) -> dict[str, Any]: ...
    def token_info(self) -> dict[str, Any]: ...
    def queue_estimate(self) -> dict[str, Any]: ...
    def create(self, name: str, photos: int, parts: int, filesize: int,
               options: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def info(self, name: str) -> dict[str, Any]: ...
    def start(self, name: str) -> dict[str, Any]: ...
    def reset(self, name: str) -> dict[str, Any]: ...


def _json_object(response: httpx.Response, what: str, server: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ClientError(f"The server's answer to {what} was not JSON; is {server} an OpenScan Cloud server?") \
            from None
    if not isinstance(data, dict):
        raise ClientError(f"The server's answer to {what} was not a JSON object.")
    return data


class LegacyApi:
    def __init__(self, http: httpx.Client, server: str, token: str, basic_auth: tuple[str, str] | None,
                 retry: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http, self.server, self.token = http, server, token
        self.basic_auth, self.retry, self.sleep = basic_auth, retry, sleep

    def _get(self, endpoint: str, action: str, params: dict[str, Any] | None = None, *, token: bool = True) -> dict:
        query = {"token": self.token, **(params or {})} if token else dict(params or {})
        response = send_with_retry(
            lambda: self.http.get(f"{self.server}/{endpoint}", params=query, auth=self.basic_auth),
            action=action, retry=self.retry, sleep=self.sleep,
        )
        if response.status_code >= 300:
            raise error_from_response(response, action=action)
        return _json_object(response, endpoint, self.server)

    def status(self) -> dict[str, Any]:
        return self._get("status", "read the server status", token=False)

    def token_info(self) -> dict[str, Any]:
        return self._get("getTokenInfo", "read the token information")

    def queue_estimate(self) -> dict[str, Any]:
        return self._get("getQueueEstimate", "read the queue estimate")

    def create(self, name: str, photos: int, parts: int, filesize: int,
               options: dict[str, Any] | None = None) -> dict[str, Any]:
        extra = {k: ",".join(v) if isinstance(v, (list, tuple)) else v
                 for k, v in (options or {}).items() if v is not None}
        return self._get("createProject", f"create the project {name}",
                         {"project": name, "photos": photos, "parts": parts, "filesize": filesize, **extra})

    def info(self, name: str) -> dict[str, Any]:
        return self._get("getProjectInfo", f"read the project {name}", {"project": name})

    def start(self, name: str) -> dict[str, Any]:
        return self._get("startProject", f"start the project {name}", {"project": name})

    def reset(self, name: str) -> dict[str, Any]:
        return self._get("resetProject", f"reset the project {name}", {"project": name})


class V1Api:
    def __init__(self, http: httpx.Client, server: str, token: str, retry: RetryPolicy,
                 sleep: Callable[[float], None] = time.sleep, keys: ProjectKeys | None = None) -> None:
        self.http, self.base, self.retry, self.sleep = http, f"{server}/api/v1", retry, sleep
        self.server, self.token, self.keys = server, token, keys
        self.headers = {"Authorization": f"Bearer {token}"}
        self._ids: dict[str, str] = {}
        self._keys: dict[str, str] = {}

    def _headers_for(self, name: str | None) -> dict[str, str]:
        """The token header, plus the project's key when it has one (projects made with the public token)."""
        headers = dict(self.headers)
        if name is not None and name in self._keys:
            headers["X-Project-Key"] = self._keys[name]
        return headers

    def _send(self, method: str, path: str, action: str, json: dict | None = None, name: str | None = None) -> dict:
        headers = self._headers_for(name)
        response = send_with_retry(
            lambda: self.http.request(method, f"{self.base}{path}", json=json, headers=headers),
            action=action, retry=self.retry, sleep=self.sleep,
        )
        if response.status_code >= 300:
            raise error_from_response(response, action=action)
        return _json_object(response, f"{method} {path}", self.server)

    def _id(self, name: str) -> str:
        if name not in self._ids and self.keys is not None:
            known = self.keys.load(self.server, self.token, name)
            if known is not None:
                self._ids[name] = known[0]
                if known[1]:
                    self._keys[name] = known[1]
        if name not in self._ids:
            listing = self._send("GET", "/projects", f"find the project {name}").get("projects") or []
            for item in listing:
                self._ids[str(item.get("name") or item.get("project"))] = str(item.get("id"))
        if name not in self._ids:
            raise ProjectNotFound(f"Could not find the project {name} on the server.", status_code=404)
        return self._ids[name]

    def status(self) -> dict[str, Any]:
        response = send_with_retry(lambda: self.http.get(f"{self.base}/status"), action="read the server status",
                                   retry=self.retry, sleep=self.sleep)
        if response.status_code >= 300:
            raise error_from_response(response, action="read the server status")
        return _json_object(response, "/status", self.server)

    def token_info(self) -> dict[str, Any]:
        return self._send("GET", "/token", "read the token information")

    def queue_estimate(self) -> dict[str, Any]:
        return self._send("GET", "/queue", "read the queue estimate")

    def create(self, name: str, photos: int, parts: int, filesize: int,
               options: dict[str, Any] | None = None) -> dict[str, Any]:
        extra = {k: list(v) if isinstance(v, tuple) else v for k, v in (options or {}).items() if v is not None}
        data = self._send("POST", "/projects", f"create the project {name}",
                          {"name": name, "photos": photos, "parts": parts, "filesize": filesize, **extra})
        if data.get("id"):
            self._ids[name] = str(data["id"])
            if data.get("project_key"):
                self._keys[name] = str(data["project_key"])
            if self.keys is not None:
                self.keys.save(self.server, self.token, name, self._ids[name], self._keys.get(name))
        return data

    def info(self, name: str) -> dict[str, Any]:
        return self._send("GET", f"/projects/{self._id(name)}", f"read the project {name}", name=name)

    def start(self, name: str) -> dict[str, Any]:
        return self._send("POST", f"/projects/{self._id(name)}/start", f"start the project {name}", name=name)

    def reset(self, name: str) -> dict[str, Any]:
        return self._send("POST", f"/projects/{self._id(name)}/reset", f"reset the project {name}", name=name)

    def cancel(self, name: str) -> dict[str, Any]:
        return self._send("POST", f"/projects/{self._id(name)}/cancel", f"cancel the project {name}", name=name)

    def delete(self, name: str) -> None:
        response = send_with_retry(
            lambda: self.http.delete(f"{self.base}/projects/{self._id(name)}", headers=self._headers_for(name)),
            action=f"delete the project {name}", retry=self.retry, sleep=self.sleep,
        )
        if response.status_code >= 300:
            raise error_from_response(response, action=f"delete the project {name}")
        self._ids.pop(name, None)

    def reprocess(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        body = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}
        return self._send("POST", f"/projects/{self._id(name)}/reprocess", f"reprocess the project {name}", body,
                          name=name)
