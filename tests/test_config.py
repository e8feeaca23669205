"""Settings: defaults, Tecken's names and aliases, and errors naming the variable."""

import pathlib

import pytest

from identity_service import config
from identity_service.config import ConfigError

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_defaults_serve_the_local_stack():
    loaded = config.load({})

    assert loaded.listen == "127.0.0.1:50051"
    assert loaded.database_url == "sqlite:///var/identity.sqlite3"
    assert loaded.not_blocked_in_auth0_interval_seconds == 86400
    assert loaded.tokens_default_expiration_days == 365
    assert loaded.session_expiration_seconds == 86400
    assert loaded.enable_auth0_blocked_check is True


def test_auth0_settings_default_to_the_oidc_client_and_issuer_host():
    loaded = config.load(
        {
            "OIDC_OP_ISSUER": "https://auth.mozilla.auth0.com/",
            "OIDC_RP_CLIENT_ID": "rp-id",
            "OIDC_RP_CLIENT_SECRET": "rp-secret",
        }
    )

    assert loaded.oidc_issuer == "https://auth.mozilla.auth0.com/"
    assert loaded.auth0_domain == "auth.mozilla.auth0.com"
    assert loaded.auth0_management_url == "https://auth.mozilla.auth0.com"
    assert loaded.auth0_audience == "https://auth.mozilla.auth0.com/api/v2/"
    assert loaded.auth0_client_id == "rp-id"
    assert loaded.auth0_client_secret == "rp-secret"


def test_django_alias_of_the_interval_is_read():
    loaded = config.load({"DJANGO_NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": "60"})

    assert loaded.not_blocked_in_auth0_interval_seconds == 60


def test_the_plain_name_wins_over_the_alias():
    loaded = config.load(
        {
            "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": "30",
            "DJANGO_NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": "60",
        }
    )

    assert loaded.not_blocked_in_auth0_interval_seconds == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS", "soon"),
        ("NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS", "-5"),
        ("TOKENS_DEFAULT_EXPIRATION_DAYS", "0"),
        ("ENABLE_AUTH0_BLOCKED_CHECK", "maybe"),
        ("IDENTITY_LISTEN", "nowhere"),
        ("IDENTITY_LISTEN", "127.0.0.1:70000"),
        ("OIDC_OP_ISSUER", "http://auth.example.com"),
        ("OIDC_OP_ISSUER", "ftp://127.0.0.1"),
        ("AUTH0_MANAGEMENT_URL", "http://10.0.0.1"),
        ("AUTH0_TIMEOUT_SECONDS", "inf"),
        ("SESSION_EXPIRATION_SECONDS", "1.5"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        config.load({name: value})


def test_scopes_must_include_openid_and_email():
    with pytest.raises(ConfigError, match="OIDC_RP_SCOPES"):
        config.load({"OIDC_RP_SCOPES": "profile"})


def test_readme_lists_every_setting_as_declared():
    assert config.settings_markdown() in README.read_text()
