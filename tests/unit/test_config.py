"""Settings and tenants: SPEC's defaults, one-line errors naming the variable, no leaked tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from service.config import load_settings
from service.errors import SettingsError
from service.tenants import Tenant, TenantDirectory, TenantKey, known_secrets
from service.topic_names import is_valid_topic

TOKEN = "s3cr3t-token-value"
OTHER_TOKEN = "other-s3cr3t-value"


pytestmark = pytest.mark.usefixtures("clean_env")


def set_default_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEBRIDGE_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("SAGEBRIDGE_CUSTOMER", "1001")
    monkeypatch.setenv("SAGEBRIDGE_COMPANY", "ACME")


def write_tenants_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "default"),
    [
        ("kafka_bootstrap", "localhost:9092"),
        ("input_topics", ("crm.events",)),
        ("group_id", "sagebridge"),
        ("reply_topic", "sage.replies"),
        ("dlt_topic", "sage.dlt"),
        ("redis_url", "redis://localhost:6379/0"),
        ("connector_url", "http://localhost:8080"),
        ("auth_token", None),
        ("customer", None),
        ("company", None),
        ("tenants_file", None),
        ("batch_max", 100),
        ("batch_wait_ms", 200),
        ("http_timeout_s", 30),
        ("max_attempts", 5),
        ("http_port", 8000),
        ("lock_ttl_ms", 40_000),
        ("settle_after_unknown_s", 120),
    ],
)
def test_default_matches_spec(attribute: str, default: object) -> None:
    assert getattr(load_settings(), attribute) == default


@pytest.mark.parametrize(
    ("raw", "topics"),
    [
        ("crm.events", ("crm.events",)),
        ("a,b", ("a", "b")),
        (" a , b ", ("a", "b")),
        ("a,,b,", ("a", "b")),
    ],
)
def test_input_topics_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, raw: str, topics: tuple[str, ...]
) -> None:
    monkeypatch.setenv("SAGEBRIDGE_INPUT_TOPICS", raw)
    assert load_settings().input_topics == topics


def test_integer_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEBRIDGE_BATCH_MAX", "250")
    assert load_settings().batch_max == 250


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SAGEBRIDGE_GROUP_ID=from-dotenv\n", encoding="utf-8")
    assert load_settings().group_id == "from-dotenv"


def test_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SAGEBRIDGE_GROUP_ID=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("SAGEBRIDGE_GROUP_ID", "from-env")
    assert load_settings().group_id == "from-env"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("crm.events", True),
        ("a_b-C.9", True),
        ("x" * 249, True),
        ("x" * 250, False),
        ("", False),
        (".", False),
        ("..", False),
        ("bad topic", False),
        ("a/b", False),
        ("tópico", False),
    ],
)
def test_topic_name_rule_is_kafkas(name: str, valid: bool) -> None:
    assert is_valid_topic(name) is valid


# --- bad settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SAGEBRIDGE_BATCH_MAX", "lots"),
        ("SAGEBRIDGE_BATCH_MAX", "0"),
        ("SAGEBRIDGE_BATCH_MAX", "1.5"),
        ("SAGEBRIDGE_INPUT_TOPICS", "crm.events,bad topic"),
        ("SAGEBRIDGE_INPUT_TOPICS", ""),
        ("SAGEBRIDGE_INPUT_TOPICS", " , "),
        ("SAGEBRIDGE_REPLY_TOPIC", "sage/replies"),
        ("SAGEBRIDGE_DLT_TOPIC", ".."),
        ("SAGEBRIDGE_HTTP_PORT", "70000"),
        ("SAGEBRIDGE_HTTP_TIMEOUT_S", "0"),
        ("SAGEBRIDGE_MAX_ATTEMPTS", "0"),
        ("SAGEBRIDGE_CONNECTOR_URL", "http://connector.example"),
        ("SAGEBRIDGE_CONNECTOR_URL", "http://10.0.0.7:8080"),
        ("SAGEBRIDGE_CONNECTOR_URL", "ftp://connector.example"),
        ("SAGEBRIDGE_HTTP_HOST", "everywhere"),
    ],
)
def test_bad_setting_raises_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(f"{variable}: ")
    assert "\n" not in text


@pytest.mark.parametrize(
    ("ttl_ms", "timeout_s"), [("10000", "30"), ("2000", "1.5"), ("100", "0.1")]
)
def test_a_lease_that_cannot_outlast_a_call_is_refused_naming_both_settings(
    monkeypatch: pytest.MonkeyPatch, ttl_ms: str, timeout_s: str
) -> None:
    monkeypatch.setenv("SAGEBRIDGE_LOCK_TTL_MS", ttl_ms)
    monkeypatch.setenv("SAGEBRIDGE_HTTP_TIMEOUT_S", timeout_s)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("SAGEBRIDGE_LOCK_TTL_MS ") and "SAGEBRIDGE_HTTP_TIMEOUT_S" in text
    assert "\n" not in text


def test_a_lease_that_outlasts_a_call_by_a_second_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAGEBRIDGE_LOCK_TTL_MS", "3000")
    monkeypatch.setenv("SAGEBRIDGE_HTTP_TIMEOUT_S", "2")
    assert load_settings().lock_ttl_ms == 3000


def test_plain_http_to_another_host_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every call carries a token in its headers: in clear only to this machine, or when the
    operator says so."""
    monkeypatch.setenv("SAGEBRIDGE_CONNECTOR_URL", "http://connector.example:8080")
    with pytest.raises(SettingsError, match="CONNECTOR_ALLOW_HTTP=true"):
        load_settings()
    for fine in ("https://connector.example", "http://localhost:8080", "http://[::1]:8080"):
        monkeypatch.setenv("SAGEBRIDGE_CONNECTOR_URL", fine)
        assert load_settings().connector_url == fine
    monkeypatch.setenv("SAGEBRIDGE_CONNECTOR_URL", "http://connector.example:8080")
    monkeypatch.setenv("SAGEBRIDGE_CONNECTOR_ALLOW_HTTP", "true")
    assert load_settings().connector_url == "http://connector.example:8080"


def test_invalid_topic_error_names_the_bad_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEBRIDGE_INPUT_TOPICS", "crm.events,bad topic")
    with pytest.raises(SettingsError, match="'bad topic'"):
        load_settings()


def test_settings_error_does_not_contain_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("SAGEBRIDGE_BATCH_MAX", "lots")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert TOKEN not in str(caught.value)


def test_token_is_kept_secret_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_default_tenant(monkeypatch)
    settings = load_settings()
    assert isinstance(settings.auth_token, SecretStr)
    assert settings.auth_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:p%40ss-w0rd@redis:6379/0",
        "rediss://sagebridge:p%40ss-w0rd@redis:6380/1",
        "redis://redis:6379/0?password=p%40ss-w0rd",
    ],
)
def test_a_redis_password_is_masked_wherever_settings_are_printed(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SAGEBRIDGE_REDIS_URL", url)
    settings = load_settings()
    assert settings.redis_url == url, "the service still connects with it"
    for printed in (repr(settings), str(settings)):
        assert "p%40ss-w0rd" not in printed and "p@ss-w0rd" not in printed
        assert "redis:63" in printed, "the rest of the URL is still shown"


def test_every_known_secret_is_listed_for_masking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("OTHER_TOKEN", OTHER_TOKEN)
    tenants = write_tenants_file(
        tmp_path, "tenants:\n  - {customer: '2', company: B, token_env: OTHER_TOKEN}\n"
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(tenants))
    monkeypatch.setenv("SAGEBRIDGE_KAFKA_SASL_PASSWORD", "sasl-secret")
    monkeypatch.setenv("SAGEBRIDGE_REDIS_URL", "redis://:p%40ss@redis:6379/0")
    settings = load_settings()
    listed = known_secrets(settings, TenantDirectory.from_settings(settings))
    assert {TOKEN, OTHER_TOKEN, "sasl-secret", "p@ss", "p%40ss"} <= set(listed)


def test_a_token_file_is_read_next_to_the_tenants_file_and_its_tokens_are_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "globex.token").write_text(OTHER_TOKEN + "\n")
    tenants = write_tenants_file(
        tmp_path, "tenants:\n  - {customer: '2', company: B, token_file: globex.token}\n"
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(tenants))
    settings = load_settings()
    directory = TenantDirectory.from_settings(settings)
    assert directory.tenants[TenantKey("2", "B")].secret() == OTHER_TOKEN
    assert OTHER_TOKEN in set(known_secrets(settings, directory))


@pytest.mark.parametrize(
    "entry",
    [
        "{customer: '2', company: B, token_env: T, token_file: t.token}",
        "{customer: '2', company: B}",
        "{customer: '2', company: B, token_file: missing.token}",
    ],
    ids=["both", "neither", "missing-file"],
)
def test_a_tenant_needs_exactly_one_usable_token_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: str
) -> None:
    monkeypatch.setenv("T", OTHER_TOKEN)
    tenants = write_tenants_file(tmp_path, f"tenants:\n  - {entry}\n")
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(tenants))
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_TENANTS_FILE.*entry 0") as caught:
        TenantDirectory.from_settings(load_settings())
    assert "\n" not in str(caught.value)


# --- tenants --------------------------------------------------------------------------------------


def test_no_tenant_configured_gives_an_empty_directory() -> None:
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.default is None
    assert directory.tenants == {}
    assert directory.resolve(None, None) is None


def test_default_tenant_comes_from_token_customer_and_company(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_default_tenant(monkeypatch)
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.default is not None
    assert directory.default.key == ("1001", "ACME")
    assert directory.default.token.get_secret_value() == TOKEN


def test_event_without_tenant_resolves_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    set_default_tenant(monkeypatch)
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.resolve(None, None) is directory.default


def test_default_tenant_can_be_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    set_default_tenant(monkeypatch)
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.resolve("1001", "ACME") is directory.default


@pytest.mark.parametrize(
    ("customer", "company"),
    [("9999", "ACME"), ("1001", "OTHER"), ("1001", None), (None, "ACME")],
)
def test_unknown_or_half_named_tenant_resolves_to_none(
    monkeypatch: pytest.MonkeyPatch, customer: str | None, company: str | None
) -> None:
    set_default_tenant(monkeypatch)
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.resolve(customer, company) is None


@pytest.mark.parametrize(
    "missing", ["SAGEBRIDGE_AUTH_TOKEN", "SAGEBRIDGE_CUSTOMER", "SAGEBRIDGE_COMPANY"]
)
def test_partial_default_tenant_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError) as caught:
        TenantDirectory.from_settings(load_settings())
    text = str(caught.value)
    assert text.startswith(f"{missing}: ")
    assert "\n" not in text
    assert TOKEN not in text


@pytest.mark.parametrize("empty", ["SAGEBRIDGE_CUSTOMER", "SAGEBRIDGE_COMPANY"])
def test_empty_customer_or_company_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv(empty, "")
    with pytest.raises(SettingsError, match=f"^{empty}: "):
        TenantDirectory.from_settings(load_settings())


def test_empty_auth_token_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("SAGEBRIDGE_AUTH_TOKEN", "")
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_AUTH_TOKEN: "):
        TenantDirectory.from_settings(load_settings())


def test_a_token_too_short_to_be_real_is_refused_in_one_line_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("SAGEBRIDGE_AUTH_TOKEN", "t")
    with pytest.raises(SettingsError) as caught:
        TenantDirectory.from_settings(load_settings())
    assert str(caught.value) == (
        "SAGEBRIDGE_AUTH_TOKEN: too short to be a real token (at least 8 characters)"
    )
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("GLOBEX_TOKEN", "s3cr3t")
    path = write_tenants_file(
        tmp_path,
        "tenants:\n  - {customer: '2002', company: GLOBEX, token_env: GLOBEX_TOKEN}\n",
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(path))
    with pytest.raises(SettingsError, match=r"^GLOBEX_TOKEN \(token of tenants entry 0\): too"):
        TenantDirectory.from_settings(load_settings())


def test_tenants_file_adds_tenants_with_tokens_from_the_named_env_vars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("GLOBEX_TOKEN", OTHER_TOKEN)
    path = write_tenants_file(
        tmp_path,
        "tenants:\n  - {customer: '2002', company: GLOBEX, token_env: GLOBEX_TOKEN}\n",
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(path))
    directory = TenantDirectory.from_settings(load_settings())
    assert set(directory.tenants) == {("1001", "ACME"), ("2002", "GLOBEX")}
    globex = directory.resolve("2002", "GLOBEX")
    assert globex is not None
    assert globex.token.get_secret_value() == OTHER_TOKEN


def test_tenants_file_works_without_a_default_tenant(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GLOBEX_TOKEN", OTHER_TOKEN)
    path = write_tenants_file(
        tmp_path,
        "tenants:\n  - {customer: '2002', company: GLOBEX, token_env: GLOBEX_TOKEN}\n",
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(path))
    directory = TenantDirectory.from_settings(load_settings())
    assert directory.default is None
    assert directory.resolve(None, None) is None
    assert directory.resolve("2002", "GLOBEX") is not None


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_tenant_token_env_not_set_names_that_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("GLOBEX_TOKEN", value)
    else:
        monkeypatch.delenv("GLOBEX_TOKEN", raising=False)
    path = write_tenants_file(
        tmp_path,
        "tenants:\n  - {customer: '2002', company: GLOBEX, token_env: GLOBEX_TOKEN}\n",
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        TenantDirectory.from_settings(load_settings())
    assert str(caught.value).startswith("GLOBEX_TOKEN: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("tenants: {customer: '2002'}\n", id="not-a-list"),
        pytest.param("tenants:\n  - {customer: '2002', company: GLOBEX}\n", id="no-token-env"),
        pytest.param("tenants:\n  - {customer: 2002, company: G, token_env: T}\n", id="int-cust"),
        pytest.param("tenants: [unclosed\n", id="invalid-yaml"),
        pytest.param("", id="empty-file"),
    ],
)
def test_malformed_tenants_file_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    monkeypatch.setenv("T", OTHER_TOKEN)
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(write_tenants_file(tmp_path, text)))
    with pytest.raises(SettingsError) as caught:
        TenantDirectory.from_settings(load_settings())
    assert str(caught.value).startswith("SAGEBRIDGE_TENANTS_FILE ")
    assert "\n" not in str(caught.value)


def test_unreadable_tenants_file_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(tmp_path / "absent.yaml"))
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_TENANTS_FILE .*cannot read"):
        TenantDirectory.from_settings(load_settings())


# --- tokens never printed -------------------------------------------------------------------------


def test_tenant_repr_never_contains_the_token() -> None:
    tenant = Tenant("1001", "ACME", SecretStr(TOKEN))
    assert TOKEN not in repr(tenant)
    assert TOKEN not in str(tenant)
    assert repr(tenant) == "Tenant(customer='1001', company='ACME')"


def test_directory_repr_never_contains_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_default_tenant(monkeypatch)
    monkeypatch.setenv("GLOBEX_TOKEN", OTHER_TOKEN)
    path = write_tenants_file(
        tmp_path,
        "tenants:\n  - {customer: '2002', company: GLOBEX, token_env: GLOBEX_TOKEN}\n",
    )
    monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(path))
    shown = repr(TenantDirectory.from_settings(load_settings()))
    assert TOKEN not in shown
    assert OTHER_TOKEN not in shown
