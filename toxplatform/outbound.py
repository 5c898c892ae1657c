"""What may leave the platform towards an HTTP endpoint a researcher names (the openai
generator; on main also the llm_judge scorer and any client of evaluation/http_client).

- `check_address(url)`: the host must resolve to public addresses only, unless an operator
  lists the network (TOXPLATFORM_ENDPOINT_NETWORKS): no loopback, private, link-local (cloud
  metadata at 169.254.169.254) or other special targets. Call it before every request, so a
  name that later resolves elsewhere is caught too.
- `api_key(params, url)`: a key only from an allow-listed environment variable
  (TOXPLATFORM_API_KEY_ENVS), and only to an allow-listed host (TOXPLATFORM_API_KEY_HOSTS).
- `describe_status(response)`: what a job's error may say about a failed response: the
  status and what it usually means, never the body (which every researcher would read).
"""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.conf import settings

from toxplatform.errors import ApplicationError


class Unresolvable(Exception):
    """The host name does not resolve now (DNS may be back later: callers may retry)."""


def check_address(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {parts.hostname}: {type(exc).__name__}") from None
    allowed = [ipaddress.ip_network(network, strict=False) for network in settings.ENDPOINT_ALLOWED_NETWORKS]
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address.is_global or any(address in network for network in allowed):
            continue
        raise ApplicationError(
            f"endpoint {parts.hostname} is a loopback, private or link-local address, which is not allowed",
            {"fix": "an operator can allow its network in TOXPLATFORM_ENDPOINT_NETWORKS"},
        )


def api_key(params: Mapping, url: str) -> str:
    """The key to send with `params` (a model spec's options: api_key_env, api_key) to `url`.

    A key written into the spec itself (api_key) is its author's own and goes to its
    endpoint; keys from the environment are the platform's secrets."""
    key_env = params.get("api_key_env")
    if key_env and key_env not in settings.OPENAI_API_KEY_ENVS:
        raise ApplicationError(
            f"api_key_env {key_env!r} is not one of the environment variables keys may come from",
            {"allowed": ", ".join(settings.OPENAI_API_KEY_ENVS) or "none", "setting": "TOXPLATFORM_API_KEY_ENVS"},
        )
    inline = params.get("api_key")
    if inline and not key_env:
        if not isinstance(inline, str):
            raise ApplicationError("api_key must be text")
        return inline
    key = os.environ.get(key_env, "") if key_env else settings.OPENAI_API_KEY
    if not key:
        return ""
    if not may_receive_keys(url):
        if key_env:
            check_key_host(key_env, url)
        return ""  # the platform's default key stays home; servers that need none still work
    return key


def may_receive_keys(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in settings.OPENAI_KEY_HOSTS


def check_key_host(key_env: str, url: str) -> None:
    """A key from the environment (the platform's secret) goes only to the hosts an operator
    listed (TOXPLATFORM_API_KEY_HOSTS), whoever names the variable: a model spec or a judge."""
    if not may_receive_keys(url):
        raise ApplicationError(
            f"the key in {key_env} may not be sent to {(urlsplit(url).hostname or '').lower()}",
            {"hosts allowed to receive keys": ", ".join(settings.OPENAI_KEY_HOSTS) or "none",
             "setting": "TOXPLATFORM_API_KEY_HOSTS"},
        )


STATUS_HINTS = {
    301: "a redirect: give the final URL", 302: "a redirect: give the final URL",
    307: "a redirect: give the final URL", 308: "a redirect: give the final URL",
    400: "the server refused the parameters", 401: "the API key is missing or wrong",
    403: "the API key may not use this model", 404: "no such path or model: check the URL and remote_model",
}


def describe_status(response) -> str:
    hint = STATUS_HINTS.get(response.status_code, "the server explains why in the worker log")
    return f"HTTP {response.status_code} {response.reason or ''}".strip() + f" ({hint})"
