"""A local stand-in for the Auth0 Management API, for development and tests.

It speaks the real API's paths, parameters and error shapes for the client-
credentials token, users-by-email (exact, case-sensitive), the user search (only
`q=email:"VALUE"`), and reading, creating and blocking users, kept in memory.
Under `/_standin/`, with no token: `GET stats`, `GET rate` (the most requests
that arrived within any one second, to check a client's rate ceiling), `POST
reset` (counts, arrivals, users and faults; issued tokens stay valid) and `POST
faults` (a JSON object, `{}` clears). Faults apply to users-by-email unless
`applies_to` is `token` or `all`.

    python -m identity_service.devstack.auth0_standin --port 0 \\
        --client-id ID --client-secret SECRET [--audience AUD] [--users FILE]

Port 0 picks a free port, and the first line on stdout names it. Without
`--audience` any audience ending in `/api/v2/` is accepted, since the service
derives its audience from a domain the stand-in cannot know. Having no real
security, it listens on loopback only.
"""

import argparse
import collections
import dataclasses
import datetime
import hmac
import http
import http.server
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from typing import Any

from identity_service.config import is_loopback_host

DATABASE_CONNECTION = "Username-Password-Authentication"
TOKEN_LIFETIME_SECONDS = 86400
GRANTED_SCOPE = "read:users update:users create:users"
SEARCH_QUERY = re.compile(r'email:"([^"]*)"')
USER_PATH = re.compile(r"/api/v2/users/([^/]+)")
COUNTS = ("token_requests", "users_by_email_requests", "search_requests")

# Arrival times kept for `GET /_standin/rate`; older ones are forgotten, so a
# long-running stand-in keeps a bounded record.
ARRIVALS_KEPT = 100_000


def is_number(value: object) -> bool:
    """Tell whether a parsed JSON value is a number (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


FAULT_CHECKS = {
    "delay_seconds": lambda v: is_number(v) and 0 <= v <= 600,
    "status": lambda v: is_number(v) and v in range(400, 600),
    "rate_limit_reset_in": lambda v: is_number(v) and 0 <= v <= 86400,
    "body": lambda v: v in ("not-json", "wrong-shape", "blocked-string"),
    "token_status": lambda v: is_number(v) and v in (401, 500),
    "revoke_tokens": lambda v: isinstance(v, bool),
    "applies_to": lambda v: v in ("lookup", "token", "all"),
}


@dataclasses.dataclass
class Answer:
    """An HTTP answer: a status, a JSON value (or raw text) and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def api_error(status: int, message: str, code: str | None = None) -> Answer:
    """Build a Management API error in Auth0's shape."""
    phrase = http.HTTPStatus(status).phrase
    body = {"statusCode": status, "error": phrase, "message": message}
    if code:
        body["errorCode"] = code
    return Answer(status, body)


def invalid_body(message: str) -> Answer:
    """Build the 400 Auth0 answers to a body that fails validation."""
    return api_error(400, f"Payload validation error: {message}", "invalid_body")


def oauth_error(status: int, error: str, description: str) -> Answer:
    """Build a token endpoint error in Auth0's shape."""
    return Answer(status, {"error": error, "error_description": description})


def iso_now() -> str:
    """Return the time as Auth0 writes it, such as 2026-01-01T00:00:00.000Z."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def target_of(path: str) -> str | None:
    """Name the part of the API a path belongs to, as faults' applies_to does."""
    if path == "/oauth/token":
        return "token"
    if path == "/api/v2/users-by-email":
        return "lookup"
    return "api" if path.startswith("/api/v2/") else None


class StandIn:
    """The stand-in's state and answers, safe to use from many threads."""

    def __init__(self, client_id: str, client_secret: str, audience: str | None):
        self._client_id = client_id
        self._client_secret = client_secret
        self._audience = audience
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Forget counts, users and faults."""
        with self._lock:
            self._users: dict[str, dict[str, Any]] = {}
            self._faults: dict[str, Any] = {}
            self._counts = dict.fromkeys(COUNTS, 0)
            self._arrivals: collections.deque[float] = collections.deque(
                maxlen=ARRIVALS_KEPT
            )

    def answer(self, method: str, path: str, query: dict, auth: str, body: bytes):
        """Answer one request; query is parse_qs output, auth the header."""
        if path.startswith("/_standin/"):
            return self._control(method, path, body)
        target = target_of(path)
        if target is None:
            return api_error(404, "Not Found")

        faults = self._count_and_read_faults(method, path, target)
        injected = self._inject(faults, target)
        if injected is not None:
            return injected
        if target == "token":
            return self._token(method, body, faults)

        if not self._is_valid_token(auth):
            return api_error(401, "Invalid token" if auth else "Missing authentication")
        return self._route(method, path, query, body, faults)

    def _count_and_read_faults(self, method: str, path: str, target: str) -> dict:
        arrived = time.monotonic()
        with self._lock:
            self._arrivals.append(arrived)
            if target == "token":
                self._counts["token_requests"] += 1
            elif target == "lookup":
                self._counts["users_by_email_requests"] += 1
            elif path == "/api/v2/users" and method == "GET":
                self._counts["search_requests"] += 1

            applies_to = self._faults.get("applies_to", "lookup")
            if applies_to in ("all", target):
                return dict(self._faults)
            return {"token_status": self._faults.get("token_status")}

    def _inject(self, faults: dict, target: str) -> Answer | None:
        time.sleep(faults.get("delay_seconds", 0))

        until = faults.get("rate_limited_until")
        if until is not None and time.time() < until:
            answer = api_error(429, "Global limit has been reached")
            answer.headers = {
                "x-ratelimit-limit": "2",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(until),
            }
            return answer

        status = faults.get("status")
        if status is None:
            return None
        if target == "token":
            return oauth_error(status, "access_denied", http.HTTPStatus(status).phrase)
        return api_error(status, "Invalid token" if status == 401 else "Injected fault")

    def _token(self, method: str, body: bytes, faults: dict) -> Answer:
        if method != "POST":
            return api_error(404, "Not Found")
        if faults.get("token_status") == 401:
            return oauth_error(401, "access_denied", "Unauthorized")
        if faults.get("token_status") == 500:
            return oauth_error(500, "access_denied", "Global limit has been reached")

        params = read_token_params(body)
        if params.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        id_ok = hmac.compare_digest(params.get("client_id", ""), self._client_id)
        secret = params.get("client_secret", "")
        if not (id_ok and hmac.compare_digest(secret, self._client_secret)):
            return oauth_error(401, "access_denied", "Unauthorized")
        audience = params.get("audience", "")
        expected = self._audience
        if audience != expected and (expected or not audience.endswith("/api/v2/")):
            return oauth_error(403, "access_denied", f"Service not found: {audience}")

        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + TOKEN_LIFETIME_SECONDS
        grant = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "scope": GRANTED_SCOPE,
        }
        return with_body_fault(Answer(200, grant), faults)

    def _is_valid_token(self, auth: str) -> bool:
        scheme, _, token = auth.partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip(), 0.0)
        return scheme.lower() == "bearer" and time.time() < expiry

    def _route(self, method, path, query, body, faults) -> Answer:
        user_match = USER_PATH.fullmatch(path)
        user_id = urllib.parse.unquote(user_match.group(1)) if user_match else None
        if path == "/api/v2/users-by-email" and method == "GET":
            return with_body_fault(self._users_by_email(query), faults)
        if path == "/api/v2/users" and method == "GET":
            return self._search(query)
        if path == "/api/v2/users" and method == "POST":
            return self.create_user(read_json_object(body) or {})
        if user_id is not None and method == "GET":
            return self._get_user(user_id)
        if user_id is not None and method == "PATCH":
            return self._update_user(user_id, body)
        return api_error(404, "Not Found")

    def _users_by_email(self, query: dict) -> Answer:
        if not query.get("email"):
            message = "Query validation error: 'Missing required property: email'"
            return api_error(400, message, "invalid_query_string")

        email = query["email"][0]
        with self._lock:
            found = [dict(u) for u in self._users.values() if u["email"] == email]
        return Answer(200, found)

    def _search(self, query: dict) -> Answer:
        match = SEARCH_QUERY.fullmatch(query.get("q", [""])[0])
        if match is None or query.get("search_engine", ["v3"]) != ["v3"]:
            message = 'The stand-in supports only q=email:"VALUE" with search_engine=v3'
            return api_error(400, message, "invalid_query_string")

        # Auth0 normalises the email field for search, so case does not matter.
        wanted = match.group(1).lower()
        with self._lock:
            users = [dict(u) for u in self._users.values()]
        return Answer(200, [u for u in users if u["email"].lower() == wanted])

    def _get_user(self, user_id: str) -> Answer:
        with self._lock:
            user = self._users.get(user_id)
        if user is None:
            return api_error(404, "The user does not exist.", "inexistent_user")
        return Answer(200, dict(user))

    def create_user(self, fields: dict[str, Any]) -> Answer:
        """Create a user as POST /api/v2/users does; the password is ignored."""
        email, connection = fields.get("email"), fields.get("connection")
        flags = (fields.get("blocked", False), fields.get("email_verified", False))
        if not isinstance(email, str) or "@" not in email:
            return invalid_body("property email must be an email")
        if not isinstance(connection, str) or not connection:
            return invalid_body("Missing required property: connection")
        if not all(isinstance(flag, bool) for flag in flags):
            return invalid_body("blocked and email_verified must be booleans")

        # Auth0 keeps emails of its own database lowercased; other connections
        # keep the casing their identity provider sent.
        if connection == DATABASE_CONNECTION:
            email = email.lower()
        user = new_user(email, connection, fields)
        with self._lock:
            for other in self._users.values():
                same_connection = other["identities"][0]["connection"] == connection
                if same_connection and other["email"] == email:
                    return api_error(409, "The user already exists.", "auth0_idp_error")
            self._users[user["user_id"]] = user
        return Answer(201, dict(user))

    def _update_user(self, user_id: str, body: bytes) -> Answer:
        fields = read_json_object(body)
        if fields is None or fields.keys() != {"blocked"}:
            return invalid_body("the stand-in updates only blocked")
        if not isinstance(fields["blocked"], bool):
            return invalid_body("blocked must be a boolean")

        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return api_error(404, "The user does not exist.", "inexistent_user")
            # Auth0 leaves blocked out of a user who is not blocked.
            user.pop("blocked", None)
            if fields["blocked"]:
                user["blocked"] = True
            user["updated_at"] = iso_now()
            return Answer(200, dict(user))

    def _control(self, method: str, path: str, body: bytes) -> Answer:
        if path == "/_standin/stats" and method == "GET":
            with self._lock:
                return Answer(200, dict(self._counts))
        if path == "/_standin/rate" and method == "GET":
            with self._lock:
                arrivals = sorted(self._arrivals)
            busiest = most_within(arrivals, 1.0)
            return Answer(
                200, {"requests": len(arrivals), "max_requests_in_any_second": busiest}
            )
        if path == "/_standin/reset" and method == "POST":
            self.reset()
            return Answer(200, {})
        if path == "/_standin/faults" and method == "POST":
            return self._set_faults(read_json_object(body))
        return api_error(404, "Not Found")

    def _set_faults(self, faults: dict | None) -> Answer:
        if faults is None:
            return api_error(400, "Expected a JSON object")
        for name, value in faults.items():
            if not FAULT_CHECKS.get(name, lambda v: False)(value):
                return api_error(400, f"Unknown fault or bad value: {name}")

        stored = {k: v for k, v in faults.items() if k != "revoke_tokens"}
        reset_in = stored.pop("rate_limit_reset_in", None)
        if reset_in is not None:
            # Auth0 gives the reset in whole seconds.
            stored["rate_limited_until"] = math.ceil(time.time() + reset_in)
        with self._lock:
            self._faults = stored
            if faults.get("revoke_tokens"):
                self._tokens.clear()
        return Answer(200, {"faults": stored})


def most_within(times: list[float], span: float) -> int:
    """Return the most of the sorted times that fit in any interval [t, t + span)."""
    most = 0
    first = 0
    for last, arrived in enumerate(times):
        while arrived - times[first] >= span:
            first += 1
        most = max(most, last - first + 1)
    return most


def new_user(email: str, connection: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Build a user object shaped like Auth0's; it counts as signed in once."""
    local_id = secrets.token_hex(12)
    provider = "auth0" if connection == DATABASE_CONNECTION else connection
    identity = {"connection": connection, "user_id": local_id, "provider": provider}
    now = iso_now()
    user = {
        "user_id": fields.get("user_id") or f"auth0|{local_id}",
        "email": email,
        "email_verified": fields.get("email_verified", False),
        "identities": [{**identity, "isSocial": False}],
        "name": fields.get("name") or email,
        "created_at": now,
        "updated_at": now,
        "last_login": now,
        "logins_count": 1,
    }
    if fields.get("blocked"):
        user["blocked"] = True
    return user


def with_body_fault(answer: Answer, faults: dict) -> Answer:
    """Spoil a successful answer's body as the body fault asks."""
    fault = faults.get("body")
    if fault == "not-json":
        return Answer(200, "<html><body>Service Unavailable</body></html>")
    if fault == "wrong-shape":
        return Answer(200, {"users": answer.body})
    if fault == "blocked-string" and isinstance(answer.body, list):
        return Answer(200, [{**user, "blocked": "true"} for user in answer.body])
    return answer


def read_token_params(body: bytes) -> dict[str, str]:
    """Read a token request's body, JSON or form-encoded, as text fields."""
    params = read_json_object(body)
    if params is None:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        params = {key: values[0] for key, values in form.items()}
    return {key: value for key, value in params.items() if isinstance(value, str)}


def read_json_object(body: bytes) -> dict | None:
    """Parse a JSON object, or return None when the body is not one."""
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Handler(http.server.BaseHTTPRequestHandler):
    """Turn HTTP requests into StandIn.answer calls."""

    protocol_version = "HTTP/1.1"
    server_version = "auth0-standin"
    # Headers and body go out in two writes; without this, Nagle's algorithm
    # holds the body back until the client's delayed ACK, some 40 ms.
    disable_nagle_algorithm = True
    server: "Server"

    def do_GET(self) -> None:
        self.serve()

    do_POST = do_PATCH = do_DELETE = do_GET

    def serve(self) -> None:
        """Read the request, answer it, and write the answer."""
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            auth = self.headers.get("Authorization", "")
            answer = self.server.standin.answer(
                self.command, url.path, query, auth, body
            )
        except Exception:
            traceback.print_exc()
            answer = api_error(500, "The stand-in failed; see its stderr")

        if isinstance(answer.body, str):
            payload, kind = answer.body.encode(), "text/html; charset=utf-8"
        else:
            payload, kind = json.dumps(answer.body).encode(), "application/json"
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting, as a client with a timeout does.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry emails in their query strings; stay quiet.
        pass


class Server(http.server.ThreadingHTTPServer):
    """A threading HTTP server on IPv4 or IPv6 that holds the StandIn."""

    daemon_threads = True

    def __init__(self, host: str, port: int, standin: StandIn) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.standin = standin


def load_users(standin: StandIn, path: str) -> None:
    """Create the users listed in a JSON file; exit naming the first bad one."""
    with open(path, encoding="utf-8") as users_file:
        entries = json.load(users_file)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        sys.exit(f"auth0-standin: {path} must hold a JSON list of user objects")

    for index, entry in enumerate(entries):
        answer = standin.create_user({"connection": DATABASE_CONNECTION, **entry})
        if answer.status != 201:
            sys.exit(f"auth0-standin: user {index} in {path}: {answer.body['message']}")


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in until interrupted."""
    parser = argparse.ArgumentParser(prog="auth0-standin")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=9500, help="0 picks a free port")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--audience", help="the one audience to accept")
    parser.add_argument("--users", help="a JSON list of users to create at start")
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.error("--host must be a loopback address")

    standin = StandIn(args.client_id, args.client_secret, args.audience)
    if args.users:
        load_users(standin, args.users)
    server = Server(args.host, args.port, standin)

    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{server.server_port}"
    print(f"auth0-standin listening on {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
