"""identity-admin, the administrator's command line of the identity service.

    identity-admin users grant alice@example.com upload.upload_symbols

The target and the caller's key come from --target and --token, or from
IDENTITY_TARGET and IDENTITY_TOKEN. Output is a table or aligned fields, or
JSON with --json. A failure prints one line on standard error and exits with
a code from `failures`.
"""

import argparse
import dataclasses
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence

from tecken_identity import _channel
from tecken_identity import _errors as errors
from tecken_identity._client import IdentityClient

from . import commands, failures, output
from .parser import build_parser


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to reach the service, from the options and then the environment."""

    target: str
    key: str | None
    timeout: float
    tls: bool
    root_certificates: bytes | None
    certificate_chain: bytes | None
    private_key: bytes | None


def read_option_file(args: argparse.Namespace, name: str) -> bytes | None:
    """Return the bytes of the file an option names, if it was given."""
    path = getattr(args, name, None)
    if not path:
        return None

    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        option = "--" + name.replace("_", "-")
        raise failures.UsageError(
            f"cannot read {option}: {error.strerror or error}"
        ) from error


def settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Return the client's settings; options win over the environment."""
    certificate_chain = read_option_file(args, "cert_file")
    private_key = read_option_file(args, "key_file")
    if (certificate_chain is None) != (private_key is None):
        raise failures.UsageError("--cert-file and --key-file go together")

    timeout = getattr(args, "timeout", _channel.DEFAULT_TIMEOUT)
    if not timeout > 0:
        raise failures.UsageError("--timeout must be more than 0 seconds")

    return Settings(
        target=getattr(args, "target", None)
        or environ.get("IDENTITY_TARGET")
        or _channel.DEFAULT_TARGET,
        key=getattr(args, "token", None) or environ.get("IDENTITY_TOKEN") or None,
        timeout=timeout,
        tls=getattr(args, "tls", False),
        root_certificates=read_option_file(args, "ca_file"),
        certificate_chain=certificate_chain,
        private_key=private_key,
    )


def run(args: argparse.Namespace, config: Settings) -> output.Report:
    """Connect as the settings say and run the chosen command."""
    if not config.key:
        raise failures.UsageError("no key: set IDENTITY_TOKEN or pass --token")

    command: commands.Command = args.command
    with IdentityClient(
        config.target,
        key=config.key,
        timeout=config.timeout,
        tls=config.tls,
        root_certificates=config.root_certificates,
        certificate_chain=config.certificate_chain,
        private_key=config.private_key,
    ) as client:
        return command(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run identity-admin with argv and return its exit code."""
    args = build_parser().parse_args(argv)

    try:
        config = settings(args, os.environ)
        report = run(args, config)
    except failures.UsageError as error:
        return fail(failures.USAGE, str(error))
    except errors.IdentityError as error:
        code = failures.exit_code(error)
        # Saying which server did not answer is what the reader needs first.
        where = f"{config.target}: " if code == failures.UNAVAILABLE else ""
        return fail(code, f"{where}{error}")
    except KeyboardInterrupt:
        return 130

    text = output.to_json(report.data) if getattr(args, "json", False) else report.text
    return show(text)


def show(text: str) -> int:
    """Print a command's output; a reader that stopped early is no failure."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # `identity-admin users list | head` closes the pipe early; pointing
        # stdout at devnull keeps Python's exit flush from printing a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return failures.OK


def fail(code: int, message: str) -> int:
    """Print the one line of a failure and return its exit code."""
    sys.stderr.write(failures.describe(code, message) + "\n")
    return code
