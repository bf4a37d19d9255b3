"""How the client reaches the Cloud Connector through a corporate network: whose certificates
it trusts, the certificate it shows, and the proxy it goes through.

Decided once, at start-up, for the one Connector URL: a CA bundle that cannot be read, a client
certificate without its key, or a proxy URL that is not one stops start-up with one line naming
the variable (:class:`~service.errors.SettingsError`), instead of every call later failing as
"cannot connect" while records pile up behind an open breaker.

* Trust: ``SAGEBRIDGE_CONNECTOR_CA_FILE`` *replaces* the default CA bundle, as
  ``SAGEBRIDGE_KAFKA_SSL_CAFILE`` does for Kafka: a TLS-inspecting proxy signs every host with
  the corporate CA, and a bundle that is meant to be the only trust should not be widened.
* Client certificate: ``SAGEBRIDGE_CONNECTOR_CLIENT_CERT`` (PEM, may hold the key too) and
  ``SAGEBRIDGE_CONNECTOR_CLIENT_KEY`` (unencrypted PEM key).
* Proxy: the standard variables, as curl and Python's urllib read them — ``https_proxy`` /
  ``HTTPS_PROXY`` for an ``https://`` Connector, ``http_proxy`` / ``HTTP_PROXY`` for
  ``http://``, the lower-case name first; ``no_proxy`` / ``NO_PROXY`` (comma-separated host
  names, domain suffixes, ``host:port``, ``*``) bypasses it, and so does this machine
  (``localhost``, loopback addresses). The HTTP client's own reading of
  the environment stays off (``trust_env=False``), so nothing else in it (``.netrc``,
  ``SSL_CERT_FILE``) changes what the client does behind the operator's back.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.config import is_loopback
from service.errors import SettingsError

CA_FILE = "SAGEBRIDGE_CONNECTOR_CA_FILE"
CLIENT_CERT = "SAGEBRIDGE_CONNECTOR_CLIENT_CERT"
CLIENT_KEY = "SAGEBRIDGE_CONNECTOR_CLIENT_KEY"

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ConnectorNetwork:
    """What the Connector client needs to reach its URL: ``None`` fields mean the defaults
    (the default CA bundle, no client certificate, no proxy)."""

    ssl_context: ssl.SSLContext | None = None
    proxy: str | None = None
    """The proxy's URL, credentials included: a secret, never logged (see :meth:`shown`)."""

    def shown(self) -> str:
        """One log line's worth: the proxy without its credentials, and whether TLS is custom."""
        proxy = "no proxy" if self.proxy is None else f"proxy {without_credentials(self.proxy)}"
        tls = "the default CA bundle" if self.ssl_context is None else "a configured TLS context"
        return f"{proxy}, {tls}"


def connector_network(
    url: str,
    *,
    ca_file: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    environ: Mapping[str, str],
) -> ConnectorNetwork:
    """The TLS context and proxy for calls to ``url``; raises :class:`SettingsError` naming the
    variable that cannot be used."""
    return ConnectorNetwork(
        ssl_context(ca_file=ca_file, client_cert=client_cert, client_key=client_key),
        proxy_for(url, environ),
    )


def ssl_context(
    *, ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext | None:
    """A context trusting ``ca_file`` (else the default bundle) and showing ``client_cert``;
    ``None`` when neither is set, so the client keeps its own default."""
    if client_key is not None and client_cert is None:
        raise SettingsError(f"{CLIENT_KEY}: set {CLIENT_CERT} too (a key alone is no certificate)")
    if ca_file is None and client_cert is None:
        return None
    if ca_file is None:
        context = httpx.create_ssl_context(trust_env=False)
    else:
        context = _loaded(CA_FILE, ca_file, lambda: ssl.create_default_context(cafile=ca_file))
    if client_cert is not None:
        name = CLIENT_CERT if client_key is None else f"{CLIENT_CERT}/{CLIENT_KEY}"
        _readable(CLIENT_CERT, client_cert)
        if client_key is not None:
            _readable(CLIENT_KEY, client_key)
        _loaded(name, client_cert, lambda: context.load_cert_chain(client_cert, client_key))
    return context


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy the standard variables name for ``url``, or ``None``: none set, ``NO_PROXY``
    matches its host, or the host is this machine (as Go's HTTP client does: a proxy cannot
    reach our loopback, and a shell's ``HTTP_PROXY`` must not divert the local sandbox)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    name, proxy = _first(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
    if not proxy or is_loopback(host):
        return None
    no_proxy = _first(environ, "no_proxy", "NO_PROXY")[1]
    if no_proxy:
        where = host if parts.port is None else f"{host}:{parts.port}"
        # urllib's own NO_PROXY rules (suffixes, host:port, "*"), given our mapping, not
        # os.environ; public in CPython, missing from typeshed's stubs.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if bypass(where, {"no": no_proxy}):
            return None
    proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_parts.scheme not in ("http", "https") or not proxy_parts.hostname:
        raise SettingsError(
            f"{name}: {without_credentials(proxy)!r} is not an http:// or https:// proxy URL"
        )
    return urlunsplit(proxy_parts)


def without_credentials(url: str) -> str:
    """``url`` fit to print: any user and password dropped."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unreadable URL>"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def _first(environ: Mapping[str, str], *names: str) -> tuple[str, str | None]:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return names[-1], None


def _readable(name: str, path: Path) -> None:
    if not path.is_file():
        raise SettingsError(f"{name}: {path} is not a readable file")


def _loaded(name: str, path: Path, load: Callable[[], _T]) -> _T:
    _readable(name, path)
    try:
        return load()
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise SettingsError(f"{name}: {path} cannot be used ({reason})") from None
