"""`make run`: the whole local stack on loopback, stopped together by Ctrl-C.

It starts oidc-provider-mock on 127.0.0.1:9400, the Auth0 stand-in on
127.0.0.1:9500, migrates the SQLite database, creates a superuser and their
key, starts the identity server on 127.0.0.1:50051 and a small sign-in page on
127.0.0.1:8000, then prints how to use them. The ports can be moved with
DEV_PROVIDER_PORT, DEV_AUTH0_PORT, DEV_GATEWAY_PORT and IDENTITY_LISTEN.
"""

import os
import signal
import subprocess
import sys
import threading

from identity_service.devstack import gateway, processes

HOST = "127.0.0.1"
SUPERUSER = os.environ.get("DEV_SUPERUSER", "admin@example.com")


def stack_environment() -> dict[str, str]:
    """Return the settings that point the server at the local stand-ins."""
    provider_port = os.environ.get("DEV_PROVIDER_PORT", "9400")
    auth0_port = os.environ.get("DEV_AUTH0_PORT", "9500")
    return {
        "IDENTITY_LISTEN": os.environ.get("IDENTITY_LISTEN", f"{HOST}:50051"),
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "sqlite:///var/identity.sqlite3"
        ),
        "OIDC_OP_ISSUER": f"http://{HOST}:{provider_port}",
        "AUTH0_MANAGEMENT_URL": f"http://{HOST}:{auth0_port}",
        "AUTH0_DOMAIN": f"{HOST}:{auth0_port}",
    }


def identity_command(env: dict[str, str], *args: str) -> str:
    """Run an identity-service command with env and return its output."""
    done = subprocess.run(
        processes.python("-m", "identity_service.cli", *args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"identity-service {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def stop_on_signal(signum: int, _frame: object) -> None:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the children are stopped too."""
    raise KeyboardInterrupt


def main() -> int:
    """Start everything, print the instructions and wait for Ctrl-C."""
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    env = stack_environment()
    os.environ.setdefault("LOG_LEVEL", "INFO")
    from identity_service import config

    settings = config.load({**os.environ, **env})

    provider = processes.start_provider(
        HOST, int(env["OIDC_OP_ISSUER"].rsplit(":", 1)[1]), tied=True
    )
    auth0 = processes.start_auth0(
        HOST,
        int(env["AUTH0_MANAGEMENT_URL"].rsplit(":", 1)[1]),
        settings.auth0_client_id,
        settings.auth0_client_secret,
        tied=True,
    )
    children = [provider, auth0]
    try:
        identity_command(env, "migrate")
        identity_command(env, "superuser", SUPERUSER)
        key = identity_command(
            env, "createtoken", SUPERUSER, "--notes", "make run"
        ).split()[-1]

        server = processes.start_identity(env, echo=True, tied=True)
        children.append(server)
        target = env["IDENTITY_LISTEN"]

        page = gateway.serve(
            HOST, int(os.environ.get("DEV_GATEWAY_PORT", "8000")), target
        )
        threading.Thread(target=page.serve_forever, daemon=True).start()
        print_instructions(target, key, page.server_address[1], env)

        server.process.wait()
    except KeyboardInterrupt:
        print("\nstopping the stack")
    finally:
        for child in reversed(children):
            child.stop()
    return 0


def print_instructions(
    target: str, key: str, gateway_port: int, env: dict[str, str]
) -> None:
    """Tell the developer how to sign in and how to call the API."""
    service = "tecken.identity.v1.IdentityService"
    print(
        f"""
The local identity stack is up (Ctrl-C stops all of it).

  identity server   {target}  (gRPC, reflection and health on)
  OIDC provider     {env["OIDC_OP_ISSUER"]}
  Auth0 stand-in    {env["AUTH0_MANAGEMENT_URL"]}
  sign-in page      http://{HOST}:{gateway_port}/

Sign in: open http://{HOST}:{gateway_port}/ in a browser, type any email as the
subject and press Authorize; the page shows your session token.

Superuser {SUPERUSER}, key:
  {key}

Try:
  .venv/bin/grpcurl -plaintext {target} list
  .venv/bin/grpcurl -plaintext -H 'authorization: Bearer {key}' -d '{{"email": "{SUPERUSER}"}}' {target} {service}/IsBlocked
  .venv/bin/grpcurl -plaintext -d '{{"token": "{key}"}}' {target} {service}/ValidateToken
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
