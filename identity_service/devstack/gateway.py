"""A minimal stand-in for Tecken's web gateway, so a person can sign in locally.

`GET /` asks the identity server's StartLogin for the provider's URL and sends
the browser there; the provider sends it back to `GET /callback`, which calls
Login and shows the session token. It is for development on loopback only.
"""

import html
import http.server
import urllib.parse

import grpc
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc


def make_handler(
    stub: pb_grpc.IdentityServiceStub, callback_url: str
) -> type[http.server.BaseHTTPRequestHandler]:
    """Return a request handler class bound to the identity server's stub."""

    class GatewayHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/":
                self.start_login()
            elif url.path == "/callback":
                self.finish_login(urllib.parse.parse_qs(url.query))
            else:
                self.page(404, "Not found", "<p>Try <a href='/'>signing in</a>.</p>")

        def start_login(self) -> None:
            try:
                started = stub.StartLogin(
                    pb.StartLoginRequest(redirect_uri=callback_url), timeout=10
                )
            except grpc.RpcError as error:
                self.page(
                    502,
                    "StartLogin failed",
                    f"<p>{html.escape(error.details() or '')}</p>",
                )
                return
            self.send_response(302)
            self.send_header("Location", started.authorization_url)
            self.end_headers()

        def finish_login(self, query: dict[str, list[str]]) -> None:
            code = query.get("code", [""])[0]
            state = query.get("state", [""])[0]
            try:
                done = stub.Login(
                    pb.LoginRequest(code=code, state=state, redirect_uri=callback_url),
                    timeout=15,
                )
            except grpc.RpcError as error:
                self.page(
                    403, "Login failed", f"<p>{html.escape(error.details() or '')}</p>"
                )
                return

            user = done.user
            permissions = ", ".join(user.permissions) or "none"
            expiry = done.expire_time.ToJsonString()
            body = (
                f"<p>Signed in as <b>{html.escape(user.email)}</b>"
                f"{' (new user)' if done.created else ''}.</p>"
                f"<p>Permissions: {html.escape(permissions)}</p>"
                f"<p>Session token (valid until {expiry}):</p>"
                f"<pre>{html.escape(done.session_token)}</pre>"
                "<p><a href='/'>Sign in again</a></p>"
            )
            self.page(200, "Signed in", body)

        def page(self, status: int, title: str, body: str) -> None:
            content = (
                f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            # Query strings carry codes; the stack's output stays readable without them.
            return

    return GatewayHandler


def serve(
    host: str, port: int, identity_target: str
) -> http.server.ThreadingHTTPServer:
    """Create the gateway's HTTP server; the caller runs serve_forever()."""
    channel = grpc.insecure_channel(identity_target)
    stub = pb_grpc.IdentityServiceStub(channel)
    server = http.server.ThreadingHTTPServer((host, port), make_handler(stub, ""))
    bound_port = server.server_address[1]
    callback = f"http://{host}:{bound_port}/callback"
    server.RequestHandlerClass = make_handler(stub, callback)
    return server
