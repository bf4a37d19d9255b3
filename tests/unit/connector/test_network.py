"""What stops start-up, in one line naming the variable, when the Connector's TLS files or proxy
cannot be used — and which proxy the standard variables choose for the Connector's URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import load_settings
from service.connector.network import proxy_for, ssl_context
from service.errors import SettingsError

URL = "https://connector.corp.example:8443"
PROXY = "http://proxy.corp.example:3128"


def test_a_ca_file_that_is_not_there_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"^SAGEBRIDGE_CONNECTOR_CA_FILE: .*not a readable file"
    ):
        ssl_context(ca_file=tmp_path / "missing.pem", client_cert=None, client_key=None)


def test_settings_refuse_a_missing_file_naming_the_variable(
    clean_env: None, tmp_path: Path
) -> None:
    for name in ("connector_ca_file", "connector_client_cert", "connector_client_key"):
        with pytest.raises(SettingsError, match=f"^SAGEBRIDGE_{name.upper()}: ") as caught:
            load_settings(**{name: tmp_path / "nope.pem"})
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("which", ["ca_file", "client_cert"])
def test_a_file_that_is_not_pem_names_its_variable(tmp_path: Path, which: str) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    paths: dict[str, Path | None] = {"ca_file": None, "client_cert": None, "client_key": None}
    paths[which] = junk
    name = f"SAGEBRIDGE_CONNECTOR_{which.upper()}"
    with pytest.raises(SettingsError, match=f"^{name}: .*cannot be used") as caught:
        ssl_context(**paths)
    assert "\n" not in str(caught.value)


def test_a_key_without_its_certificate_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("x")
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_CONNECTOR_CLIENT_KEY: set "):
        ssl_context(ca_file=None, client_cert=None, client_key=key)


def test_nothing_set_keeps_the_clients_default_trust() -> None:
    assert ssl_context(ca_file=None, client_cert=None, client_key=None) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": PROXY}, PROXY),
        ({"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, PROXY),  # lower case first
        ({"HTTP_PROXY": PROXY}, None),  # an https:// URL uses HTTPS_PROXY only
        ({"HTTPS_PROXY": "proxy.corp.example:3128"}, PROXY),  # no scheme: http://
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "corp.example"}, None),  # domain suffix
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": ".corp.example"}, None),
        ({"HTTPS_PROXY": PROXY, "no_proxy": "connector.corp.example:8443"}, None),
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "connector.corp.example:9999"}, PROXY),
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, None),
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "other.example, localhost"}, PROXY),
    ],
)
def test_the_standard_variables_choose_the_proxy(
    environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(URL, environ) == expected


def test_a_plain_http_connector_uses_http_proxy() -> None:
    assert proxy_for("http://connector.corp.example", {"HTTP_PROXY": PROXY}) == PROXY


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "https://localhost:8443", "http://[::1]"])
def test_this_machine_is_never_reached_through_a_proxy(url: str) -> None:
    assert proxy_for(url, {"HTTP_PROXY": PROXY, "HTTPS_PROXY": PROXY}) is None


def test_a_proxy_that_is_not_a_url_names_its_variable_and_hides_its_password() -> None:
    with pytest.raises(SettingsError, match=r"^HTTPS_PROXY: ") as caught:
        proxy_for(URL, {"HTTPS_PROXY": "socks5://user:s3cret@proxy:1080"})
    assert "s3cret" not in str(caught.value)
