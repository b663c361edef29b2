"""Rules for webhook targets. A webhook makes this server send a request wherever a stranger asks, so a
target must be a public address: no loopback, private, link-local, multicast or reserved networks, in any
spelling (`127.1`, `2130706433`, `[::ffff:127.0.0.1]`, ...). The URL is checked when the project is created;
the address is checked again when the request is sent, on the address actually connected (`notify.webhook`),
because a name can resolve differently later."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from openscancloud.domain.errors import InvalidInput

MAX_WEBHOOK_URL = 2000


def check_webhook_url(url: str, *, allow_private: bool = False) -> None:
    """Raise InvalidInput unless `url` is a plain http(s) URL of reasonable length whose host, if written as
    an address, is public."""
    if len(url) > MAX_WEBHOOK_URL:
        raise InvalidInput(f"The webhook URL is longer than {MAX_WEBHOOK_URL} characters.", code="invalid_webhook")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput("The webhook URL cannot be read.", code="invalid_webhook") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("The webhook must be an http:// or https:// URL with a host name.", code="invalid_webhook")
    if parts.username or parts.password:
        raise InvalidInput("The webhook URL may not contain a user name or password.", code="invalid_webhook")
    if port == 0:
        raise InvalidInput("The webhook URL has an invalid port.", code="invalid_webhook")
    address = literal_address(parts.hostname)
    if address is not None and not allow_private and not is_public(address):
        raise InvalidInput("The webhook must point to a public internet address, not to this server's own "
                           "or a private network.", code="webhook_not_public")


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host string denotes by itself (including legacy IPv4 forms like `2130706433` or `127.1`
    that the C resolver accepts), or None for a real name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:  # inet_aton accepts the legacy numeric forms every resolver would turn into an address
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_loopback
                                      or address.is_link_local or address.is_private)
