"""The service's settings: each declared once, with its default and its doc.

Settings come from environment variables. Tecken's names are kept where Tecken
had one, so an existing deployment's settings carry over. A bad value stops the
server at start with a message naming the variable. The README's settings table
is generated from `SETTINGS` (`identity-service settings --markdown`), and a test
keeps the two in step.
"""

import dataclasses
import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names it."""


def parse_bool(text: str) -> bool:
    """Read true/false, yes/no, on/off or 1/0."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def positive_int(text: str) -> int:
    """Read a whole number greater than zero."""
    value = int(text.strip())
    if value <= 0:
        raise ValueError("expected a whole number greater than 0")
    return value


def positive_float(text: str) -> float:
    """Read a number greater than zero."""
    value = float(text.strip())
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a number greater than 0")
    return value


def is_loopback_host(host: str) -> bool:
    """Tell whether host names this machine: localhost or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(text: str) -> str:
    """Read an https URL, or an http one on a loopback host; drop a final slash."""
    url = text.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("plain http is allowed only for loopback addresses")
    return url


def issuer_url(text: str) -> str:
    """Read an issuer URL as http_url does, but keep it exactly as written.

    ID tokens' `iss` must equal the issuer character for character, and Auth0's
    issuers end with a slash.
    """
    http_url(text)
    return text.strip()


def listen_address(text: str) -> str:
    """Read HOST:PORT for the gRPC server."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, such as 127.0.0.1:50051")
    return text.strip()


def text(value: str) -> str:
    """Read any text as it is."""
    return value


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, parser and documentation."""

    name: str
    default: str | None
    parse: Callable[[str], Any]
    doc: str
    aliases: tuple[str, ...] = ()
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "IDENTITY_LISTEN",
        "127.0.0.1:50051",
        listen_address,
        "Address the gRPC server listens on, as HOST:PORT; port 0 picks a free one.",
    ),
    Setting(
        "IDENTITY_WORKERS",
        "1",
        positive_int,
        "Server processes sharing the listening port (SO_REUSEPORT); one per "
        "core uses the whole host.",
    ),
    Setting(
        "TOKEN_CACHE_SECONDS",
        "1",
        positive_float,
        "Longest time a cached token answer may lag a revocation, permission "
        "change or deactivation made by another process; this process's own "
        "changes take effect at once.",
    ),
    Setting(
        "TOKEN_CACHE_MAX_ENTRIES",
        "100000",
        positive_int,
        "Tokens each server process keeps in its cache.",
    ),
    Setting(
        "IDENTITY_TLS_CERT",
        None,
        text,
        "PEM file of the server's certificate, then any intermediates; with "
        "`IDENTITY_TLS_KEY` set too, the port speaks TLS only. Read at start.",
    ),
    Setting(
        "IDENTITY_TLS_KEY",
        None,
        text,
        "PEM file of the unencrypted private key of `IDENTITY_TLS_CERT`.",
    ),
    Setting(
        "IDENTITY_TLS_CLIENT_CA",
        None,
        text,
        "PEM file of the CA certificates that sign callers' certificates; when "
        "set, every caller must present one (mutual TLS). Needs TLS on.",
    ),
    Setting(
        "DATABASE_URL",
        "sqlite:///var/identity.sqlite3",
        text,
        "`sqlite:///PATH` or `postgresql://USER@HOST:PORT/DB`; the service picks "
        "the async driver. A relative SQLite path is relative to the working "
        "directory.",
    ),
    Setting(
        "DATABASE_POOL_SIZE",
        "10",
        positive_int,
        "Connections kept open to PostgreSQL by each server process.",
    ),
    Setting(
        "DATABASE_TIMEOUT_SECONDS",
        "5",
        positive_float,
        "Longest wait of the server for a PostgreSQL connection (pooled or new) "
        "and for one statement; past it the call gets UNAVAILABLE.",
    ),
    Setting(
        "OIDC_OP_ISSUER",
        "http://127.0.0.1:9400",
        issuer_url,
        "The OpenID Connect provider's issuer URL, exactly as the provider writes "
        "it (Auth0's ends with `/`); its discovery document supplies the "
        "endpoints, and every ID token's `iss` must equal it.",
    ),
    Setting(
        "OIDC_RP_CLIENT_ID",
        "tecken-identity-local",
        text,
        "This service's client id at the provider; ID tokens must name it in `aud`.",
    ),
    Setting(
        "OIDC_RP_CLIENT_SECRET",
        "tecken-identity-local-secret",
        text,
        "This service's client secret at the provider.",
        secret=True,
    ),
    Setting(
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        None,
        http_url,
        "Overrides the discovery document's `authorization_endpoint`.",
    ),
    Setting(
        "OIDC_OP_TOKEN_ENDPOINT",
        None,
        http_url,
        "Overrides the discovery document's `token_endpoint`.",
    ),
    Setting(
        "OIDC_OP_JWKS_ENDPOINT",
        None,
        http_url,
        "Overrides the discovery document's `jwks_uri`.",
    ),
    Setting(
        "OIDC_RP_SCOPES",
        "openid email",
        text,
        "Scopes asked for at sign-in; `openid` and `email` are needed.",
    ),
    Setting(
        "LOGIN_STATE_EXPIRATION_SECONDS",
        "600",
        positive_int,
        "How long the `state` returned by StartLogin can be used.",
    ),
    Setting(
        "SESSION_EXPIRATION_SECONDS",
        "86400",
        positive_int,
        "How long a session token from Login lives.",
    ),
    Setting(
        "TOKENS_DEFAULT_EXPIRATION_DAYS",
        "365",
        positive_int,
        "Expiry of an API token created without `expires_in_days`.",
    ),
    Setting(
        "ENABLE_AUTH0_BLOCKED_CHECK",
        "true",
        parse_bool,
        "Re-check in Auth0 that users who authenticate are not blocked.",
    ),
    Setting(
        "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS",
        "86400",
        positive_int,
        "Longest time between two Auth0 checks of one user.",
        aliases=("DJANGO_NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS",),
    ),
    Setting(
        "AUTH0_DOMAIN",
        None,
        text,
        "The Auth0 tenant's domain; defaults to the host of `OIDC_OP_ISSUER`.",
    ),
    Setting(
        "AUTH0_MANAGEMENT_URL",
        None,
        http_url,
        "Base URL of the Auth0 Management API and token endpoint; defaults to "
        "`https://` plus `AUTH0_DOMAIN`.",
    ),
    Setting(
        "AUTH0_AUDIENCE",
        None,
        text,
        "Audience of the management token; defaults to `https://AUTH0_DOMAIN/api/v2/`.",
    ),
    Setting(
        "AUTH0_CLIENT_ID",
        None,
        text,
        "Client id for the Management API; defaults to `OIDC_RP_CLIENT_ID`.",
    ),
    Setting(
        "AUTH0_CLIENT_SECRET",
        None,
        text,
        "Client secret for the Management API; defaults to `OIDC_RP_CLIENT_SECRET`.",
        secret=True,
    ),
    Setting(
        "AUTH0_TIMEOUT_SECONDS",
        "5",
        positive_float,
        "Longest wait for one Auth0 request; the caller's deadline can shorten it.",
    ),
    Setting(
        "AUTH0_MAX_REQUESTS_PER_SECOND",
        "10",
        positive_float,
        "Ceiling on the requests each server process sends to Auth0 in any second "
        "(token and lookups together); a call that cannot have a turn within its "
        "deadline gets `AUTH0_UNAVAILABLE` at once. The default fits a paid "
        "production tenant (about 16 a second sustained) and leaves room for the "
        "tenant's other clients; a free tenant allows about 2, a non-production "
        "one under 1. With several replicas, divide the tenant's share among them.",
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS",
        "10",
        positive_float,
        "On SIGTERM or SIGINT, how long calls in flight may take to finish.",
    ),
    Setting(
        "IDENTITY_CLOCK_OFFSET_FILE",
        None,
        text,
        "For tests only: a file holding seconds to add to the wall clock, read "
        "whenever it changes, so tests move the service's time without sleeping.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        text,
        "Python logging level of the server's log.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings after parsing and after their defaults are worked out."""

    listen: str
    workers: int
    token_cache_seconds: float
    token_cache_max_entries: int
    tls_cert: str | None
    tls_key: str | None
    tls_client_ca: str | None
    database_url: str
    database_pool_size: int
    database_timeout_seconds: float
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret: str
    oidc_authorization_endpoint: str | None
    oidc_token_endpoint: str | None
    oidc_jwks_endpoint: str | None
    oidc_scopes: str
    login_state_expiration_seconds: int
    session_expiration_seconds: int
    tokens_default_expiration_days: int
    enable_auth0_blocked_check: bool
    not_blocked_in_auth0_interval_seconds: int
    auth0_domain: str
    auth0_management_url: str
    auth0_audience: str
    auth0_client_id: str
    auth0_client_secret: str
    auth0_timeout_seconds: float
    auth0_max_requests_per_second: float
    shutdown_grace_seconds: float
    clock_offset_file: str | None
    log_level: str


def read_raw(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse every setting from environ, naming the variable in any error."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = None
        for name in (setting.name, *setting.aliases):
            if environ.get(name, "") != "":
                raw = environ[name]
                break
        else:
            name = setting.name
            raw = setting.default

        if raw is None:
            values[setting.name] = None
            continue

        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as error:
            shown = "(hidden)" if setting.secret else repr(raw)
            raise ConfigError(f"{name}={shown} is invalid: {error}") from None
    return values


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from environ (the process environment by default)."""
    raw = read_raw(os.environ if environ is None else environ)

    scopes = raw["OIDC_RP_SCOPES"].split()
    if "openid" not in scopes or "email" not in scopes:
        raise ConfigError("OIDC_RP_SCOPES must include openid and email")

    level = raw["LOG_LEVEL"].upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL={raw['LOG_LEVEL']!r} is not a logging level")

    check_tls_settings(raw)

    domain = raw["AUTH0_DOMAIN"] or urllib.parse.urlsplit(raw["OIDC_OP_ISSUER"]).netloc
    management_url = raw["AUTH0_MANAGEMENT_URL"]
    if management_url is None:
        try:
            management_url = http_url(f"https://{domain}")
        except ValueError as error:
            raise ConfigError(f"AUTH0_DOMAIN={domain!r} is invalid: {error}") from None

    return Config(
        listen=raw["IDENTITY_LISTEN"],
        workers=raw["IDENTITY_WORKERS"],
        token_cache_seconds=raw["TOKEN_CACHE_SECONDS"],
        token_cache_max_entries=raw["TOKEN_CACHE_MAX_ENTRIES"],
        database_url=raw["DATABASE_URL"],
        database_pool_size=raw["DATABASE_POOL_SIZE"],
        database_timeout_seconds=raw["DATABASE_TIMEOUT_SECONDS"],
        oidc_issuer=raw["OIDC_OP_ISSUER"],
        oidc_client_id=raw["OIDC_RP_CLIENT_ID"],
        oidc_client_secret=raw["OIDC_RP_CLIENT_SECRET"],
        oidc_authorization_endpoint=raw["OIDC_OP_AUTHORIZATION_ENDPOINT"],
        oidc_token_endpoint=raw["OIDC_OP_TOKEN_ENDPOINT"],
        oidc_jwks_endpoint=raw["OIDC_OP_JWKS_ENDPOINT"],
        oidc_scopes=" ".join(scopes),
        login_state_expiration_seconds=raw["LOGIN_STATE_EXPIRATION_SECONDS"],
        session_expiration_seconds=raw["SESSION_EXPIRATION_SECONDS"],
        tokens_default_expiration_days=raw["TOKENS_DEFAULT_EXPIRATION_DAYS"],
        enable_auth0_blocked_check=raw["ENABLE_AUTH0_BLOCKED_CHECK"],
        not_blocked_in_auth0_interval_seconds=raw[
            "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS"
        ],
        auth0_domain=domain,
        auth0_management_url=management_url,
        auth0_audience=raw["AUTH0_AUDIENCE"] or f"https://{domain}/api/v2/",
        auth0_client_id=raw["AUTH0_CLIENT_ID"] or raw["OIDC_RP_CLIENT_ID"],
        auth0_client_secret=raw["AUTH0_CLIENT_SECRET"] or raw["OIDC_RP_CLIENT_SECRET"],
        auth0_timeout_seconds=raw["AUTH0_TIMEOUT_SECONDS"],
        auth0_max_requests_per_second=raw["AUTH0_MAX_REQUESTS_PER_SECOND"],
        shutdown_grace_seconds=raw["SHUTDOWN_GRACE_SECONDS"],
        clock_offset_file=raw["IDENTITY_CLOCK_OFFSET_FILE"],
        log_level=level,
        tls_cert=raw["IDENTITY_TLS_CERT"],
        tls_key=raw["IDENTITY_TLS_KEY"],
        tls_client_ca=raw["IDENTITY_TLS_CLIENT_CA"],
    )


def check_tls_settings(raw: Mapping[str, Any]) -> None:
    """Refuse half a TLS set-up, which would otherwise serve plaintext."""
    if bool(raw["IDENTITY_TLS_CERT"]) != bool(raw["IDENTITY_TLS_KEY"]):
        raise ConfigError(
            "IDENTITY_TLS_CERT and IDENTITY_TLS_KEY must be set together, or neither"
        )
    if raw["IDENTITY_TLS_CLIENT_CA"] and not raw["IDENTITY_TLS_CERT"]:
        raise ConfigError(
            "IDENTITY_TLS_CLIENT_CA needs TLS on: set IDENTITY_TLS_CERT and "
            "IDENTITY_TLS_KEY too"
        )


def settings_markdown() -> str:
    """Render the README's table of settings."""
    lines = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        name = f"`{setting.name}`"
        if setting.aliases:
            name += " (also " + ", ".join(f"`{a}`" for a in setting.aliases) + ")"
        default = "(none)" if setting.default is None else f"`{setting.default}`"
        lines.append(f"| {name} | {default} | {setting.doc} |")
    return "\n".join(lines) + "\n"
