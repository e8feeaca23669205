"""Sign-in through an OpenID Connect provider: the code flow with PKCE.

`OidcClient.start` builds the provider's authorization URL with a fresh state,
nonce and PKCE verifier; the server keeps the returned `LoginStart` in its
database, since state is single-use and must survive a move between replicas.
`OidcClient.finish` exchanges the code and checks the ID token claim by claim,
because a library that checks only what it is told to is easy to misconfigure.

The provider's discovery document and JWKS are cached in the process. Every wait
on the provider is bounded by the caller's remaining deadline, and every failure
is translated into one of the service's domain errors:

    unreachable, 5xx, bad JSON, timeout   errors.Unavailable (PROVIDER_UNAVAILABLE)
    the provider refuses the code         errors.InvalidArgument (field "code")
    an ID token check fails               errors.Unauthenticated (ID_TOKEN_INVALID)
"""

import asyncio
import base64
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import AsyncIterator

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, RSAKey

from identity_service import errors
from identity_service.clock import Clock
from identity_service.config import Config, is_loopback_host

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
LEEWAY_SECONDS = 60
DISCOVERY_MAX_AGE_SECONDS = 3600
JWKS_MAX_AGE_SECONDS = 3600
# Shortest time between two JWKS fetches caused by unknown key ids, so that a
# flood of tokens naming made-up keys costs the provider one request at most.
JWKS_REFETCH_SECONDS = 5
REDIRECT_URI_MAX_LENGTH = 2000
CODE_MAX_LENGTH = 4096
ID_TOKEN_MAX_LENGTH = 64 * 1024

# Asymmetric algorithms only: with HS* the client secret would be the key, and
# a token signed with the provider's public key read as an HMAC secret would pass.
ALLOWED_ALGORITHMS = tuple(
    "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512".split()
)
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

# Token endpoint errors that mean this service is misconfigured at the
# provider, not that the user brought a bad code.
_CLIENT_ERRORS = frozenset(
    "invalid_client unauthorized_client unsupported_grant_type invalid_scope "
    "access_denied".split()
)
# Private members of RSA and EC JWKs (RFC 7518, section 6).
_PRIVATE = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth"))
_OAUTH_ERROR_NAME = re.compile(r"[a-z0-9_]{1,64}")


@dataclasses.dataclass(frozen=True)
class LoginStart:
    """What StartLogin hands out and the server stores until Login."""

    authorization_url: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who signed in, as the verified ID token says."""

    subject: str
    email: str
    claims: dict[str, object]


def check_redirect_uri(redirect_uri: str) -> str:
    """Return redirect_uri if a browser may safely be sent back to it.

    It must be an absolute https URL, or http on a loopback host, without a
    fragment, credentials or control characters, and at most 2000 characters.

    Raises:
        errors.InvalidArgument: naming the field `redirect_uri`.
    """
    problem = _redirect_uri_problem(redirect_uri)
    if problem:
        raise errors.InvalidArgument(errors.FIELD_INVALID, "redirect_uri", problem)
    return redirect_uri


def _redirect_uri_problem(uri: object) -> str | None:
    if not isinstance(uri, str) or not uri:
        return "must not be empty"

    if len(uri) > REDIRECT_URI_MAX_LENGTH:
        return f"must be at most {REDIRECT_URI_MAX_LENGTH} characters"

    # urlsplit quietly drops tabs and newlines, so look at the raw text first.
    if not uri.isascii() or any(ord(char) < 0x21 or ord(char) == 0x7F for char in uri):
        return "must be plain ASCII without spaces or control characters"

    if "#" in uri:
        return "must not have a fragment"

    return _url_problem(uri)


def _url_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "must be a well-formed URL"

    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL"

    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https unless the host is a loopback address"

    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return None


@dataclasses.dataclass(frozen=True)
class _Provider:
    """The parts of the discovery document this client uses, already checked."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_method: str
    fetched_at: float


@dataclasses.dataclass(frozen=True)
class _KeySet:
    """The provider's signing keys, with the kid each was published under."""

    keys: tuple[tuple[str | None, Key], ...]
    fetched_at: float


class _Deadline:
    """The seconds left for one call, measured on the monotonic clock.

    The service Clock is not used here: a test's ManualClock does not move
    while a socket waits, and the bound must hold in real time.
    """

    def __init__(self, timeout: float | None) -> None:
        seconds = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Return the seconds left, or raise Unavailable when none are."""
        left = self._end - time.monotonic()
        if not left > 0:
            raise _unavailable("the deadline passed before the provider answered")
        return left


class OidcClient:
    """The relying party: builds sign-in URLs and turns codes into identities."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        # trust_env is off so that a proxy variable cannot send the client
        # secret somewhere the configuration did not name.
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            headers={"accept": "application/json", "user-agent": "tecken-identity"},
        )
        self._provider: _Provider | None = None
        self._provider_lock = asyncio.Lock()
        self._key_set: _KeySet | None = None
        self._key_set_lock = asyncio.Lock()

    # The fixed interface takes the caller's remaining deadline as a number,
    # since it also bounds httpx's own timeouts (hence noqa ASYNC109 below).
    async def start(
        self,
        redirect_uri: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> LoginStart:
        """Begin a sign-in: fresh state, nonce and PKCE verifier, and the URL.

        Args:
            redirect_uri: where the provider sends the browser back.
            timeout: seconds left of the caller's deadline (10 when None).

        Returns:
            The LoginStart to store until the browser comes back.

        Raises:
            errors.InvalidArgument: the redirect_uri is not acceptable.
            errors.Unavailable: discovery failed.
        """
        check_redirect_uri(redirect_uri)
        provider = await self._discover(_Deadline(timeout))

        # 43 characters of 62 give about 256 bits; the verifier's alphabet is
        # a subset of what RFC 7636 allows.
        state = generate_token(43)
        nonce = generate_token(43)
        code_verifier = generate_token(64)

        params = [
            ("response_type", "code"),
            ("client_id", self._config.oidc_client_id),
            ("redirect_uri", redirect_uri),
            ("scope", self._config.oidc_scopes),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", create_s256_code_challenge(code_verifier)),
            ("code_challenge_method", "S256"),
        ]
        url = add_params_to_uri(provider.authorization_endpoint, params)
        return LoginStart(url, state, nonce, code_verifier, redirect_uri)

    async def finish(
        self,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        nonce: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Identity:
        """Exchange the code for an ID token and return whom it names.

        Args:
            code: the code the provider put on the redirect.
            redirect_uri: the one this login started with.
            code_verifier: the PKCE verifier this login started with.
            nonce: the nonce this login started with.
            timeout: seconds left of the caller's deadline (10 when None).

        Raises:
            errors.InvalidArgument: the code is malformed or the provider refused it.
            errors.Unauthenticated: the ID token failed a check.
            errors.Unavailable: the provider could not answer.
        """
        if not isinstance(code, str) or not 0 < len(code) <= CODE_MAX_LENGTH:
            raise errors.InvalidArgument(
                errors.FIELD_INVALID,
                "code",
                f"must be 1 to {CODE_MAX_LENGTH} characters",
            )
        check_redirect_uri(redirect_uri)
        deadline = _Deadline(timeout)

        provider = await self._discover(deadline)
        id_token = await self._exchange_code(
            provider, code, redirect_uri, code_verifier, deadline
        )

        return await self._validate(id_token, nonce, deadline)

    async def validate_id_token(
        self,
        id_token: str,
        *,
        nonce: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Identity:
        """Check an ID token fully against the provider and this login's nonce.

        `finish` calls this; it is public so that each check can be tested with
        forged tokens.

        Raises:
            errors.Unauthenticated: a check failed; the message names which.
            errors.Unavailable: discovery or the JWKS could not be fetched.
        """
        deadline = _Deadline(timeout)
        return await self._validate(id_token, nonce, deadline)

    async def aclose(self) -> None:
        """Close the HTTP connections to the provider."""
        await self._http.aclose()

    async def _discover(self, deadline: _Deadline) -> _Provider:
        provider = self._provider
        if provider is not None and not self._is_stale(provider.fetched_at):
            return provider

        async with _holding(self._provider_lock, deadline):
            provider = self._provider
            if provider is not None and not self._is_stale(provider.fetched_at):
                return provider

            url = self._config.oidc_issuer.rstrip("/")
            url += "/.well-known/openid-configuration"
            document = await self._get_json(url, deadline)

            provider = _parse_discovery(document, self._config, self._clock.timestamp())
            self._provider = provider
            return provider

    def _is_stale(self, fetched_at: float) -> bool:
        return self._clock.timestamp() - fetched_at >= DISCOVERY_MAX_AGE_SECONDS

    def _forget_provider(self) -> None:
        # After trouble the endpoints may have moved: discover again next time.
        self._provider = None

    async def _exchange_code(
        self,
        provider: _Provider,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        deadline: _Deadline,
    ) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {}
        if provider.auth_method == "client_secret_basic":
            headers["authorization"] = _basic_authorization(
                self._config.oidc_client_id, self._config.oidc_client_secret
            )
        else:
            form["client_id"] = self._config.oidc_client_id
            form["client_secret"] = self._config.oidc_client_secret

        response = await self._send(
            "POST", provider.token_endpoint, deadline, data=form, headers=headers
        )
        if response.status_code != 200:
            raise self._token_error(response)

        document = self._read_json(response)
        id_token = document.get("id_token")
        if not isinstance(id_token, str):
            logger.warning("The OIDC token response has no id_token")
            raise _unavailable("the provider's token response has no ID token")
        return id_token

    def _token_error(self, response: httpx.Response) -> errors.IdentityError:
        status = response.status_code
        error = _oauth_error_name(response)

        if 400 <= status < 500 and status not in (401, 429) and error:
            if error not in _CLIENT_ERRORS:
                return errors.InvalidArgument(
                    errors.FIELD_INVALID,
                    "code",
                    f"the provider refused the code: {error}",
                )

        logger.warning(
            "The OIDC token endpoint answered HTTP %d (%s)", status, error or "no error"
        )
        self._forget_provider()
        return _unavailable(f"the provider's token endpoint answered HTTP {status}")

    async def _validate(
        self, id_token: str, nonce: str, deadline: _Deadline
    ) -> Identity:
        provider = await self._discover(deadline)

        signed = _parse_compact(id_token)
        header = signed.headers()
        # ID tokens use no JWS extension, so a critical one cannot be honoured
        # and an unencoded payload (b64) has no business here.
        if "crit" in header or "b64" in header:
            raise _invalid("format")

        alg = header.get("alg")
        if alg not in provider.algorithms:
            raise _invalid("algorithm")

        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("key")
        key = await self._signing_key(provider, alg, kid, deadline)

        _verify_signature(signed, key, alg)

        claims = _decode_claims(signed.payload)
        return _check_claims(
            claims,
            issuer=self._config.oidc_issuer,
            client_id=self._config.oidc_client_id,
            nonce=nonce,
            now=self._clock.timestamp(),
        )

    async def _signing_key(
        self, provider: _Provider, alg: str, kid: str | None, deadline: _Deadline
    ) -> Key:
        now = self._clock.timestamp()
        key_set = await self._load_keys(
            provider, deadline, fresher_than=now - JWKS_MAX_AGE_SECONDS
        )
        key = _pick_key(key_set, alg, kid)
        if key is not None:
            return key

        # The provider may have rotated its keys since the last fetch.
        key_set = await self._load_keys(
            provider, deadline, fresher_than=now - JWKS_REFETCH_SECONDS
        )
        key = _pick_key(key_set, alg, kid)
        if key is None:
            raise _invalid("key")
        return key

    async def _load_keys(
        self, provider: _Provider, deadline: _Deadline, *, fresher_than: float
    ) -> _KeySet:
        """Return the cached key set if fetched after fresher_than, else fetch it."""
        key_set = self._key_set
        if key_set is not None and key_set.fetched_at > fresher_than:
            return key_set

        async with _holding(self._key_set_lock, deadline):
            # Whoever held the lock before may have just fetched.
            key_set = self._key_set
            if key_set is not None and key_set.fetched_at > fresher_than:
                return key_set

            try:
                document = await self._get_json(provider.jwks_uri, deadline)
                key_set = _parse_jwks(document, self._clock.timestamp())
            except errors.Unavailable:
                self._forget_provider()
                raise

            self._key_set = key_set
            return key_set

    async def _get_json(self, url: str, deadline: _Deadline) -> dict[str, object]:
        response = await self._send("GET", url, deadline)
        if response.status_code != 200:
            logger.warning(
                "OIDC provider answered HTTP %d for %s", response.status_code, url
            )
            raise _unavailable(f"the provider answered HTTP {response.status_code}")
        return self._read_json(response)

    async def _send(
        self,
        method: str,
        url: str,
        deadline: _Deadline,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        seconds = deadline.remaining()
        try:
            # httpx bounds each phase; asyncio bounds the whole exchange, so a
            # provider trickling bytes cannot outlast the caller's deadline.
            async with asyncio.timeout(seconds):
                return await self._http.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=httpx.Timeout(seconds),
                )
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as error:
            logger.warning(
                "OIDC provider request %s %s failed: %s",
                method,
                url,
                type(error).__name__,
            )
            raise _unavailable("the provider did not answer") from error

    def _read_json(self, response: httpx.Response) -> dict[str, object]:
        try:
            document = response.json()
        except ValueError as error:
            logger.warning(
                "OIDC provider sent a body that is not JSON: %s", response.url
            )
            raise _unavailable("the provider's answer is not JSON") from error

        if not isinstance(document, dict):
            logger.warning(
                "OIDC provider sent JSON that is not an object: %s", response.url
            )
            raise _unavailable("the provider's answer is not a JSON object")
        return document


@contextlib.asynccontextmanager
async def _holding(lock: asyncio.Lock, deadline: _Deadline) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(deadline.remaining()):
            await lock.acquire()
    except TimeoutError as error:
        raise _unavailable(
            "the deadline passed before the provider answered"
        ) from error

    try:
        yield
    finally:
        lock.release()


def _parse_discovery(
    document: dict[str, object], config: Config, now: float
) -> _Provider:
    if document.get("issuer") != config.oidc_issuer:
        logger.warning(
            "OIDC discovery issuer %r does not match the configured %r",
            document.get("issuer"),
            config.oidc_issuer,
        )
        raise _unavailable("the provider's issuer does not match the configured issuer")

    authorization_endpoint = _endpoint(
        document, "authorization_endpoint", config.oidc_authorization_endpoint
    )
    token_endpoint = _endpoint(document, "token_endpoint", config.oidc_token_endpoint)
    jwks_uri = _endpoint(document, "jwks_uri", config.oidc_jwks_endpoint)

    # Discovery requires this list and RS256 in it, so RS256 is the fallback.
    offered = _string_list(document, "id_token_signing_alg_values_supported", ["RS256"])
    algorithms = tuple(alg for alg in ALLOWED_ALGORITHMS if alg in offered)
    if not algorithms:
        logger.warning("OIDC provider offers no ID token algorithm from the allow-list")
        raise _unavailable("the provider signs ID tokens with no accepted algorithm")

    # RFC 8414 makes client_secret_basic the default when the list is absent.
    methods = _string_list(
        document, "token_endpoint_auth_methods_supported", ["client_secret_basic"]
    )
    for auth_method in ("client_secret_basic", "client_secret_post"):
        if auth_method in methods:
            break
    else:
        logger.warning("OIDC provider offers no client authentication method we use")
        raise _unavailable("the provider supports no usable client authentication")

    return _Provider(
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        jwks_uri=jwks_uri,
        algorithms=algorithms,
        auth_method=auth_method,
        fetched_at=now,
    )


def _endpoint(document: dict[str, object], name: str, override: str | None) -> str:
    url = override or document.get(name)
    if not isinstance(url, str) or "#" in url or _url_problem(url):
        logger.warning("OIDC discovery has no usable %s", name)
        raise _unavailable(f"the provider's discovery document has no usable {name}")
    return url


def _string_list(
    document: dict[str, object], name: str, default: list[str]
) -> list[str]:
    value = document.get(name, default)
    if not isinstance(value, list):
        logger.warning("OIDC discovery field %s is not a list", name)
        raise _unavailable(f"the provider's discovery document has a bad {name}")
    return [item for item in value if isinstance(item, str)]


def _parse_jwks(document: dict[str, object], now: float) -> _KeySet:
    published = document.get("keys")
    if not isinstance(published, list):
        logger.warning("OIDC JWKS has no list of keys")
        raise _unavailable("the provider's JWKS has no keys")

    keys: list[tuple[str | None, Key]] = []
    for data in published:
        key = _import_signing_key(data)
        if key is not None:
            kid = data.get("kid")
            keys.append((kid if isinstance(kid, str) else None, key))

    if not keys:
        logger.warning("OIDC JWKS holds no usable signing key")
        raise _unavailable("the provider's JWKS holds no usable signing key")
    return _KeySet(tuple(keys), now)


def _import_signing_key(data: object) -> Key | None:
    """Import one public signing key, or return None for one we never use."""
    if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC"):
        return None

    if data.get("use", "sig") != "sig":
        return None

    # A JWKS publishes public keys; ignore private parts if a provider leaks them.
    public = {name: value for name, value in data.items() if name not in _PRIVATE}
    try:
        return JWKRegistry.import_key(public)
    except (JoseError, ValueError, TypeError):
        logger.warning("OIDC JWKS holds a key that cannot be imported")
        return None


def _pick_key(key_set: _KeySet, alg: str, kid: str | None) -> Key | None:
    candidates = [
        (key_kid, key)
        for key_kid, key in key_set.keys
        if _key_fits(key, alg) and (kid is None or key_kid == kid)
    ]

    # Without a kid, only a single candidate is unambiguous (Core 10.1).
    if len(candidates) != 1 and kid is None:
        return None
    return candidates[0][1] if candidates else None


def _key_fits(key: Key, alg: str) -> bool:
    if key.alg is not None and key.alg != alg:
        return False

    if alg in _EC_CURVES:
        return isinstance(key, ECKey) and key.curve_name == _EC_CURVES[alg]
    return isinstance(key, RSAKey)


def _parse_compact(id_token: object) -> jws.CompactSignature:
    if not isinstance(id_token, str) or len(id_token) > ID_TOKEN_MAX_LENGTH:
        raise _invalid("format")

    try:
        return jws.extract_compact(id_token.encode("ascii"))
    except (JoseError, ValueError):
        raise _invalid("format") from None


def _verify_signature(signed: jws.CompactSignature, key: Key, alg: str) -> None:
    # Header fields beyond the registered ones are tolerated, as providers add
    # their own; none of them can change how the signature is checked.
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    try:
        valid = jws.validate_compact(signed, key, registry=registry)
    except (JoseError, ValueError):
        valid = False

    if not valid:
        raise _invalid("signature")


def _decode_claims(payload: bytes | None) -> dict[str, object]:
    try:
        claims = json.loads(payload or b"")
    except ValueError:
        raise _invalid("format") from None

    if not isinstance(claims, dict):
        raise _invalid("format")
    return claims


def _check_claims(
    claims: dict[str, object], *, issuer: str, client_id: str, nonce: str, now: float
) -> Identity:
    if claims.get("iss") != issuer:
        raise _invalid("issuer")

    _check_audience(claims, client_id)

    expires = _number(claims.get("exp"))
    if expires is None or not expires > now - LEEWAY_SECONDS:
        raise _invalid("expiry")

    issued = _number(claims.get("iat"))
    if issued is None or not issued < now + LEEWAY_SECONDS:
        raise _invalid("issued-at")

    not_before = _number(claims.get("nbf", now))
    if not_before is None or not not_before < now + LEEWAY_SECONDS:
        raise _invalid("not-before")

    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not _same(token_nonce, nonce):
        raise _invalid("nonce")

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("subject")

    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise _invalid("email")

    # Absent means the provider does not say; anything but true when present
    # (false, or a string some providers send) is not a verified address.
    if "email_verified" in claims and claims["email_verified"] is not True:
        raise _invalid("email_verified")

    return Identity(subject=subject, email=email, claims=dict(claims))


def _check_audience(claims: dict[str, object], client_id: str) -> None:
    audience = claims.get("aud")
    if isinstance(audience, str):
        audience = [audience]
    if not isinstance(audience, list) or client_id not in audience:
        raise _invalid("audience")

    azp = claims.get("azp")
    if len(audience) > 1 and azp is None:
        raise _invalid("authorized party")
    if azp is not None and azp != client_id:
        raise _invalid("authorized party")

    # No other audience is configured as trusted, so any other one is not
    # (Core 3.1.3.7, step 3). A setting listing trusted audiences would relax it.
    if any(member != client_id for member in audience):
        raise _invalid("audience")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _basic_authorization(client_id: str, secret: str) -> str:
    # RFC 6749 2.3.1 form-encodes both parts before joining them.
    pair = urllib.parse.quote(client_id, safe="") + ":"
    pair += urllib.parse.quote(secret, safe="")
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _oauth_error_name(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None

    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and _OAUTH_ERROR_NAME.fullmatch(error):
        return error
    return None


def _invalid(check: str) -> errors.Unauthenticated:
    logger.warning("ID token %s check failed", check)
    return errors.Unauthenticated(
        errors.ID_TOKEN_INVALID, f"ID token {check} check failed"
    )


def _unavailable(message: str) -> errors.Unavailable:
    return errors.Unavailable(errors.PROVIDER_UNAVAILABLE, message)
