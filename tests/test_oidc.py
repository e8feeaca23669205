"""The OIDC relying party, against a real oidc-provider-mock and forged tokens.

The provider runs as a subprocess, since importing it in-process emits Authlib
deprecation warnings that pytest turns into errors. It takes its issuer from
the request's host, so every URL here says 127.0.0.1. The forged-token tests
sign with a key of their own and serve it through an httpx.MockTransport.
"""

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from identity_service import config, errors, oidc
from identity_service.clock import ManualClock

CLIENT_ID = "tecken-test"
STUB_ISSUER = "http://127.0.0.1:9"
PROVIDER_START_SECONDS = 15


def free_port() -> int:
    """Return a loopback port that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def drain(stream: IO[str]) -> None:
    """Read the provider's log to its end, so a full pipe never blocks it."""
    for _line in stream:
        pass


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """Run oidc-provider-mock on a free loopback port for this module."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "-p",
            str(port),
            "-H",
            "127.0.0.1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    # The watchdog ends a provider that never says it is ready; the loop
    # below then reads the end of its log and fails.
    watchdog = threading.Timer(PROVIDER_START_SECONDS, process.kill)
    watchdog.start()
    drainer = None

    try:
        for line in process.stderr:
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("oidc-provider-mock did not start")
        watchdog.cancel()
        drainer = threading.Thread(target=drain, args=(process.stderr,), daemon=True)
        drainer.start()

        yield f"http://127.0.0.1:{port}"
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=10)
        # The drainer stops at the end of the log; closing the pipe under it
        # would make it fail.
        if drainer is not None:
            drainer.join(timeout=10)
        process.stderr.close()


def make_config(issuer: str, **overrides: str) -> config.Config:
    """Build a Config for issuer from environment-style settings."""
    environ = {
        "OIDC_OP_ISSUER": issuer,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": "s3cret:with/odd chars",
        **overrides,
    }
    return config.load(environ)


def real_now_clock() -> ManualClock:
    """Start a manual clock at the real time, as the provider stamps tokens so."""
    return ManualClock(datetime.datetime.now(datetime.UTC))


@pytest.fixture
async def client(issuer: str) -> AsyncIterator[oidc.OidcClient]:
    """An OidcClient for the running provider."""
    relying_party = oidc.OidcClient(make_config(issuer), real_now_clock())
    yield relying_party
    await relying_party.aclose()


async def authorize(issuer: str, login: oidc.LoginStart) -> str:
    """Play the browser: approve as alice and return the code from the redirect."""
    query = urllib.parse.urlsplit(login.authorization_url).query
    async with httpx.AsyncClient(trust_env=False) as browser:
        response = await browser.post(
            f"{issuer}/oauth2/authorize?{query}", data={"sub": "alice@example.com"}
        )

    assert response.status_code == 302
    location = urllib.parse.urlsplit(response.headers["location"])
    params = urllib.parse.parse_qs(location.query)
    assert location.netloc == "127.0.0.1:8000"
    assert params["state"] == [login.state]
    return params["code"][0]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


REDIRECT_URI = "http://127.0.0.1:8000/callback"


# The whole flow against the real provider.


async def test_sign_in_returns_the_identity(client, issuer):
    login = await client.start(REDIRECT_URI)
    code = await authorize(issuer, login)

    identity = await client.finish(
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=login.code_verifier,
        nonce=login.nonce,
    )

    assert identity.subject == "alice@example.com"
    assert identity.email == "alice@example.com"
    assert identity.claims["iss"] == issuer
    assert identity.claims["aud"] in (CLIENT_ID, [CLIENT_ID])


async def test_start_builds_the_authorization_url(client, issuer):
    login = await client.start(REDIRECT_URI)

    url = urllib.parse.urlsplit(login.authorization_url)
    params = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{issuer}/oauth2/authorize"
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": s256(login.code_verifier),
        "code_challenge_method": "S256",
    }
    assert login.redirect_uri == REDIRECT_URI


async def test_start_makes_fresh_random_values(client):
    first = await client.start(REDIRECT_URI)
    second = await client.start(REDIRECT_URI)

    for login in (first, second):
        # 22 characters of 62 are already 128 bits.
        assert re.fullmatch(r"[A-Za-z0-9]{22,}", login.state)
        assert re.fullmatch(r"[A-Za-z0-9]{22,}", login.nonce)
        assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", login.code_verifier)
    assert first.state != second.state
    assert first.nonce != second.nonce
    assert first.code_verifier != second.code_verifier


async def test_provider_puts_the_nonce_into_the_id_token(client, issuer):
    login = await client.start(REDIRECT_URI)
    code = await authorize(issuer, login)

    identity = await client.finish(
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=login.code_verifier,
        nonce=login.nonce,
    )

    assert identity.claims["nonce"] == login.nonce


async def test_reused_code_is_refused(client, issuer):
    login = await client.start(REDIRECT_URI)
    code = await authorize(issuer, login)
    arguments = {
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": login.code_verifier,
        "nonce": login.nonce,
    }
    await client.finish(**arguments)

    with pytest.raises(errors.InvalidArgument) as caught:
        await client.finish(**arguments)

    assert caught.value.field == "code"
    assert caught.value.reason == errors.FIELD_INVALID
    assert "the provider refused the code: invalid_grant" in caught.value.message


async def test_nonce_of_another_login_is_refused(client, issuer):
    login = await client.start(REDIRECT_URI)
    other = await client.start(REDIRECT_URI)
    code = await authorize(issuer, login)

    with pytest.raises(errors.Unauthenticated) as caught:
        await client.finish(
            code=code,
            redirect_uri=REDIRECT_URI,
            code_verifier=login.code_verifier,
            nonce=other.nonce,
        )

    assert caught.value.reason == errors.ID_TOKEN_INVALID
    assert caught.value.message == "ID token nonce check failed"


async def test_discovery_with_another_issuer_is_unavailable(issuer):
    # The provider answers for the host it was asked by, in lower case, so
    # an issuer spelled in capitals is, exactly compared, another issuer.
    port = urllib.parse.urlsplit(issuer).port
    relying_party = oidc.OidcClient(
        make_config(f"http://LOCALHOST:{port}"), real_now_clock()
    )

    try:
        with pytest.raises(errors.Unavailable) as caught:
            await relying_party.start(REDIRECT_URI)
    finally:
        await relying_party.aclose()

    assert caught.value.reason == errors.PROVIDER_UNAVAILABLE
    assert "issuer does not match" in caught.value.message


async def test_provider_down_is_unavailable():
    relying_party = oidc.OidcClient(
        make_config(f"http://127.0.0.1:{free_port()}"), real_now_clock()
    )

    try:
        with pytest.raises(errors.Unavailable) as caught:
            await relying_party.start(REDIRECT_URI)
    finally:
        await relying_party.aclose()

    assert caught.value.reason == errors.PROVIDER_UNAVAILABLE


async def test_silent_provider_is_unavailable_within_the_deadline():
    # A listening socket that never answers: the connection is accepted by
    # the kernel's backlog and the request waits until the deadline.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        relying_party = oidc.OidcClient(
            make_config(f"http://127.0.0.1:{port}"), real_now_clock()
        )

        try:
            with pytest.raises(errors.Unavailable):
                await asyncio.wait_for(
                    relying_party.start(REDIRECT_URI, timeout=0.2), timeout=5
                )
        finally:
            await relying_party.aclose()


# Redirect URIs.


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://symbols.mozilla.org/oidc/callback",
        "https://symbols.mozilla.org:8443/cb?next=%2Fuploads",
        "http://127.0.0.1:8000/callback",
        "http://localhost/callback",
        "http://[::1]:8000/callback",
    ],
)
def test_redirect_uri_accepted(redirect_uri):
    assert oidc.check_redirect_uri(redirect_uri) == redirect_uri


@pytest.mark.parametrize(
    ("redirect_uri", "problem"),
    [
        ("", "empty"),
        ("http://symbols.mozilla.org/callback", "https"),
        ("http://127.0.0.1.example.com/callback", "https"),
        ("/callback", "absolute"),
        ("symbols.mozilla.org/callback", "absolute"),
        ("javascript:alert(1)", "absolute"),
        ("https:///callback", "absolute"),
        ("https://symbols.mozilla.org/callback#top", "fragment"),
        ("https://symbols.mozilla.org/callback#", "fragment"),
        ("https://symbols.mozilla.org/" + "a" * 2000, "2000"),
        ("https://symbols.mozilla.org/call\nback", "control"),
        ("https://user:pw@symbols.mozilla.org/callback", "credentials"),
        ("https://symbols.mozilla.org:port/callback", "well-formed"),
    ],
)
def test_redirect_uri_refused(redirect_uri, problem):
    with pytest.raises(errors.InvalidArgument) as caught:
        oidc.check_redirect_uri(redirect_uri)

    assert caught.value.field == "redirect_uri"
    assert caught.value.reason == errors.FIELD_INVALID
    assert problem in caught.value.message


async def test_start_refuses_a_bad_redirect_uri_before_any_request(client):
    with pytest.raises(errors.InvalidArgument):
        await client.start("javascript:alert(1)")


# Forged ID tokens, against a stub provider whose keys are ours.


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class StubProvider:
    """Discovery, JWKS and a token endpoint served through httpx.MockTransport."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        self.published = [self.key]
        self.discovery: dict[str, object] = {
            "issuer": STUB_ISSUER,
            "authorization_endpoint": f"{STUB_ISSUER}/authorize",
            "token_endpoint": f"{STUB_ISSUER}/token",
            "jwks_uri": f"{STUB_ISSUER}/jwks",
            # The provider claims HS256 and none; the client must refuse both.
            "id_token_signing_alg_values_supported": [
                "RS256",
                "ES256",
                "HS256",
                "none",
            ],
        }
        self.token_answer: Callable[[httpx.Request], httpx.Response] | None = None
        # When set, JWKS answers wait for it, so concurrent callers overlap.
        self.jwks_gate: asyncio.Event | None = None
        self.counts = {"/.well-known/openid-configuration": 0, "/jwks": 0, "/token": 0}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.counts[request.url.path] += 1
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if request.url.path == "/jwks":
            if self.jwks_gate is not None:
                await self.jwks_gate.wait()
            keys = [key.as_dict(private=False) for key in self.published]
            return httpx.Response(200, json={"keys": keys})
        assert self.token_answer is not None
        return self.token_answer(request)


@pytest.fixture
def stub() -> StubProvider:
    return StubProvider()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def stub_client(stub, clock) -> AsyncIterator[oidc.OidcClient]:
    relying_party = oidc.OidcClient(
        make_config(STUB_ISSUER),
        clock,
        transport=httpx.MockTransport(stub.handle),
    )
    yield relying_party
    await relying_party.aclose()


def claims_for(clock: ManualClock, **changes: object) -> dict[str, object]:
    """Return valid claims for nonce "n-1", with changes (None removes a claim)."""
    now = int(clock.timestamp())
    claims: dict[str, object] = {
        "iss": STUB_ISSUER,
        "aud": CLIENT_ID,
        "sub": "auth0|alice",
        "email": "alice@example.com",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def sign(claims: dict[str, object], key, kid: str = "key-1", alg="RS256") -> str:
    return jwt.encode({"alg": alg, "kid": kid}, claims, key)


async def refused(relying_party: oidc.OidcClient, token: str) -> str:
    """Validate a token that must fail and return the failure's message."""
    with pytest.raises(errors.Unauthenticated) as caught:
        await relying_party.validate_id_token(token, nonce="n-1")

    assert caught.value.reason == errors.ID_TOKEN_INVALID
    return caught.value.message


async def test_forged_setup_accepts_a_good_token(stub, stub_client, clock):
    identity = await stub_client.validate_id_token(
        sign(claims_for(clock), stub.key), nonce="n-1"
    )

    assert identity.subject == "auth0|alice"
    assert identity.email == "alice@example.com"


async def test_alg_none_is_refused(stub_client, clock):
    header = b64(json.dumps({"alg": "none", "kid": "key-1"}).encode())
    payload = b64(json.dumps(claims_for(clock)).encode())

    message = await refused(stub_client, f"{header}.{payload}.")

    assert message == "ID token algorithm check failed"


async def test_hs256_signed_with_the_public_key_is_refused(stub, stub_client, clock):
    public_pem = stub.key.as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": "key-1"}).encode())
    payload = b64(json.dumps(claims_for(clock)).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256)

    message = await refused(stub_client, f"{header}.{payload}.{b64(mac.digest())}")

    assert message == "ID token algorithm check failed"


async def test_signature_of_another_key_is_refused(stub_client, clock):
    impostor = RSAKey.generate_key(2048)

    message = await refused(stub_client, sign(claims_for(clock), impostor))

    assert message == "ID token signature check failed"


async def test_tampered_payload_is_refused(stub, stub_client, clock):
    header, _payload, signature = sign(claims_for(clock), stub.key).split(".")
    payload = b64(json.dumps(claims_for(clock, sub="auth0|mallory")).encode())

    message = await refused(stub_client, f"{header}.{payload}.{signature}")

    assert message == "ID token signature check failed"


async def test_garbage_is_refused(stub_client):
    assert await refused(stub_client, "not-a-jwt") == "ID token format check failed"


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"iss": "http://127.0.0.1:9/"}, "issuer"),
        ({"iss": None}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": [CLIENT_ID, "someone-else"]}, "authorized party"),
        ({"aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID}, "audience"),
        ({"azp": "someone-else"}, "authorized party"),
        ({"iat": None}, "issued-at"),
        ({"exp": "tomorrow"}, "expiry"),
        ({"nonce": None}, "nonce"),
        ({"nonce": "n-2"}, "nonce"),
        ({"email": None}, "email"),
        ({"email": ["alice@example.com"]}, "email"),
        ({"email_verified": False}, "email_verified"),
        ({"email_verified": "false"}, "email_verified"),
        ({"sub": None}, "subject"),
    ],
)
async def test_bad_claim_is_refused(stub, stub_client, clock, changes, check):
    token = sign(claims_for(clock, **changes), stub.key)

    assert await refused(stub_client, token) == f"ID token {check} check failed"


async def test_verified_email_and_own_azp_are_accepted(stub, stub_client, clock):
    claims = claims_for(clock, email_verified=True, azp=CLIENT_ID, aud=[CLIENT_ID])

    identity = await stub_client.validate_id_token(sign(claims, stub.key), nonce="n-1")

    assert identity.claims["email_verified"] is True


async def test_expiry_allows_a_minute_of_leeway(stub, stub_client, clock):
    token = sign(claims_for(clock), stub.key)

    clock.advance(300 + 50)
    await stub_client.validate_id_token(token, nonce="n-1")

    clock.advance(20)
    assert await refused(stub_client, token) == "ID token expiry check failed"


async def test_issued_in_the_future_is_refused(stub, stub_client, clock):
    now = int(clock.timestamp())
    soon = sign(claims_for(clock, iat=now + 30), stub.key)
    later = sign(claims_for(clock, iat=now + 120), stub.key)

    await stub_client.validate_id_token(soon, nonce="n-1")

    assert await refused(stub_client, later) == "ID token issued-at check failed"


async def test_ec_key_of_an_offered_algorithm_is_accepted(stub, stub_client, clock):
    ec_key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    stub.published.append(ec_key)

    token = sign(claims_for(clock), ec_key, kid="ec-1", alg="ES256")

    assert (await stub_client.validate_id_token(token, nonce="n-1")).email


async def test_unknown_kid_fetches_the_jwks_once_more(stub, stub_client, clock):
    await stub_client.validate_id_token(sign(claims_for(clock), stub.key), nonce="n-1")
    rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2"})
    stub.published = [stub.key, rotated]
    clock.advance(10)

    token = sign(claims_for(clock), rotated, kid="key-2")
    await stub_client.validate_id_token(token, nonce="n-1")

    assert stub.counts["/jwks"] == 2


async def test_flood_of_unknown_kids_is_one_fetch_every_few_seconds(
    stub, stub_client, clock
):
    await stub_client.validate_id_token(sign(claims_for(clock), stub.key), nonce="n-1")
    bogus = sign(claims_for(clock), stub.key, kid="made-up")

    assert await refused(stub_client, bogus) == "ID token key check failed"
    assert stub.counts["/jwks"] == 1

    clock.advance(10)
    stub.jwks_gate = asyncio.Event()

    async def open_gate() -> None:
        stub.jwks_gate.set()

    # gather starts its tasks in order, so every validation is waiting on
    # the JWKS answer (or on its turn for it) before the gate opens.
    flood = [stub_client.validate_id_token(bogus, nonce="n-1") for _ in range(20)]
    outcomes = await asyncio.gather(*flood, open_gate(), return_exceptions=True)

    assert all(isinstance(outcome, errors.Unauthenticated) for outcome in outcomes[:-1])
    assert stub.counts["/jwks"] == 2


async def test_discovery_is_cached_for_an_hour(stub, stub_client, clock):
    token = sign(claims_for(clock), stub.key)
    await stub_client.validate_id_token(token, nonce="n-1")
    await stub_client.validate_id_token(token, nonce="n-1")
    assert stub.counts["/.well-known/openid-configuration"] == 1

    clock.advance(3600)
    with pytest.raises(errors.Unauthenticated):
        await stub_client.validate_id_token(token, nonce="n-1")

    assert stub.counts["/.well-known/openid-configuration"] == 2


async def test_failed_discovery_is_tried_again(stub, stub_client):
    stub.discovery["issuer"] = "http://127.0.0.1:10"
    with pytest.raises(errors.Unavailable):
        await stub_client.start(REDIRECT_URI)

    stub.discovery["issuer"] = STUB_ISSUER
    await stub_client.start(REDIRECT_URI)

    assert stub.counts["/.well-known/openid-configuration"] == 2


# The token exchange, against the stub.


def token_endpoint(stub: StubProvider, clock: ManualClock, seen: list[httpx.Request]):
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id_token": sign(claims_for(clock), stub.key)})

    return answer


async def test_exchange_sends_the_verifier_with_basic_auth(stub, stub_client, clock):
    seen: list[httpx.Request] = []
    stub.token_answer = token_endpoint(stub, clock, seen)
    login = await stub_client.start(REDIRECT_URI)

    await stub_client.finish(
        code="c-1",
        redirect_uri=REDIRECT_URI,
        code_verifier=login.code_verifier,
        nonce="n-1",
    )

    form = dict(urllib.parse.parse_qsl(seen[0].content.decode()))
    assert form == {
        "grant_type": "authorization_code",
        "code": "c-1",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": login.code_verifier,
    }
    expected = b64(b"tecken-test:s3cret%3Awith%2Fodd%20chars")
    assert seen[0].headers["authorization"].rstrip("=") == f"Basic {expected}"


async def test_exchange_posts_the_secret_when_only_post_is_offered(
    stub, stub_client, clock
):
    seen: list[httpx.Request] = []
    stub.token_answer = token_endpoint(stub, clock, seen)
    stub.discovery["token_endpoint_auth_methods_supported"] = ["client_secret_post"]

    await stub_client.finish(
        code="c-1", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, nonce="n-1"
    )

    form = dict(urllib.parse.parse_qsl(seen[0].content.decode()))
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == "s3cret:with/odd chars"
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(500, text="oops"), errors.Unavailable),
        (httpx.Response(200, text="<html>"), errors.Unavailable),
        (httpx.Response(200, json={"access_token": "a"}), errors.Unavailable),
        (httpx.Response(401, json={"error": "invalid_client"}), errors.Unavailable),
        (httpx.Response(400, json={"error": "invalid_client"}), errors.Unavailable),
        (httpx.Response(403, json={"error": "invalid_grant"}), errors.InvalidArgument),
        (httpx.Response(400, json={"error": "invalid_grant"}), errors.InvalidArgument),
    ],
)
async def test_token_endpoint_trouble_is_translated(stub, stub_client, response, error):
    stub.token_answer = lambda request: response

    with pytest.raises(error):
        await stub_client.finish(
            code="c-1", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, nonce="n-1"
        )


async def test_jwks_without_usable_keys_is_unavailable(stub, stub_client, clock):
    stub.published = []

    with pytest.raises(errors.Unavailable):
        await stub_client.validate_id_token(
            sign(claims_for(clock), stub.key), nonce="n-1"
        )
