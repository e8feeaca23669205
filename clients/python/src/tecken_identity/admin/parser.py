"""The command line of identity-admin: its options and subcommands."""

import argparse
import sys
from typing import NoReturn

from tecken_identity import _channel
from tecken_identity import _models as models

from . import commands
from .failures import USAGE, describe

EPILOG = """\
environment:
  IDENTITY_TARGET  the server's host:port, when --target is not given
  IDENTITY_TOKEN   your own key, when --token is not given (prefer it to
                   --token, which other users of the machine can see)

exit codes:
  0 success, 1 other failure (such as no such user), 2 usage error or input
  the service refused, 3 denied (missing, unknown or expired key, or not
  allowed), 4 unavailable (the service did not answer in time)
"""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(describe(USAGE, f"{message} (see {self.prog} --help)") + "\n")
        sys.exit(USAGE)


def connection_options() -> Parser:
    """Return the options every command takes, before or after its name.

    Their defaults are suppressed here and applied in `settings`, so that an
    option given before the subcommand is not reset by the subcommand's own
    copy of it.
    """
    shared = Parser(add_help=False)
    shared.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help="the server's host:port (default: $IDENTITY_TARGET or "
        f"{_channel.DEFAULT_TARGET})",
    )
    shared.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="your own key (default: $IDENTITY_TOKEN)",
    )
    shared.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds each call may take (default: {_channel.DEFAULT_TIMEOUT:g})",
    )
    shared.add_argument(
        "--tls",
        action="store_true",
        default=argparse.SUPPRESS,
        help="connect with TLS, trusting the system's certificate roots",
    )
    shared.add_argument(
        "--ca-file",
        default=argparse.SUPPRESS,
        help="a PEM file of the CA to trust; implies --tls",
    )
    shared.add_argument(
        "--cert-file",
        default=argparse.SUPPRESS,
        help="a PEM client certificate, for a server that asks for one; implies --tls",
    )
    shared.add_argument(
        "--key-file",
        default=argparse.SUPPRESS,
        help="the PEM private key of --cert-file",
    )
    shared.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of tables",
    )
    return shared


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_command(
    group: "argparse._SubParsersAction[Parser]",
    name: str,
    command: commands.Command,
    shared: Parser,
    help_text: str,
) -> Parser:
    """Add a subcommand that runs command."""
    parser = group.add_parser(
        name, help=help_text, description=help_text, parents=[shared]
    )
    parser.set_defaults(command=command)
    return parser


def add_users(group: "argparse._SubParsersAction[Parser]", shared: Parser) -> None:
    """Add `users` and its subcommands."""
    users = group.add_parser("users", help="list, show and change users")
    actions = users.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )

    listing = add_command(actions, "list", commands.users_list, shared, "list users")
    listing.add_argument(
        "--page-size",
        type=positive_int,
        default=200,
        help="users fetched per call (default: 200)",
    )
    show = add_command(actions, "show", commands.users_show, shared, "show a user")
    show.add_argument("email")

    grant = add_command(
        actions,
        "grant",
        commands.users_grant,
        shared,
        "add permissions to a user, creating the user if the email is new",
    )
    grant.add_argument("email")
    grant.add_argument("permissions", nargs="+", metavar="PERMISSION")
    revoke = add_command(
        actions,
        "revoke",
        commands.users_revoke,
        shared,
        "take permissions from a user and from all of their tokens",
    )
    revoke.add_argument("email")
    revoke.add_argument("permissions", nargs="+", metavar="PERMISSION")

    superuser = add_command(
        actions,
        "superuser",
        commands.users_superuser,
        shared,
        "make a user a superuser; with --off, take it away (the permissions "
        "granted to them stay)",
    )
    superuser.add_argument("email")
    superuser.add_argument(
        "--off", action="store_true", help="take superuser away instead"
    )

    for name, command, help_text in (
        ("activate", commands.users_activate, "activate a user"),
        (
            "deactivate",
            commands.users_deactivate,
            "deactivate a user: every session and token of theirs stops working",
        ),
    ):
        add_command(actions, name, command, shared, help_text).add_argument("email")


def add_tokens(group: "argparse._SubParsersAction[Parser]", shared: Parser) -> None:
    """Add `tokens` and its subcommands, which act on the caller's own tokens."""
    tokens = group.add_parser("tokens", help="your own API tokens")
    actions = tokens.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )

    listing = add_command(
        actions, "list", commands.tokens_list, shared, "list your tokens"
    )
    listing.add_argument(
        "--state",
        choices=[state.value for state in models.TokenState],
        default=models.TokenState.ACTIVE.value,
        help="which tokens (default: active)",
    )

    create = add_command(
        actions,
        "create",
        commands.tokens_create,
        shared,
        "create a token; its key is printed alone on the last line",
    )
    create.add_argument("permissions", nargs="+", metavar="PERMISSION")
    create.add_argument(
        "--days",
        type=positive_int,
        default=None,
        help="days until it expires (default: the server's, 365 unless changed)",
    )
    create.add_argument("--notes", default="", help="what the token is for")

    revoke = add_command(
        actions,
        "revoke",
        commands.tokens_revoke,
        shared,
        "revoke a token (a superuser may revoke anybody's)",
    )
    revoke.add_argument("token_id", metavar="ID")

    extend = add_command(
        actions, "extend", commands.tokens_extend, shared, "move a token's expiry later"
    )
    extend.add_argument("token_id", metavar="ID")
    extend.add_argument(
        "--days",
        type=positive_int,
        default=365,
        help="days to add to its expiry, or to now if it has expired (default: 365)",
    )


def build_parser() -> Parser:
    """Return the parser of the whole command line."""
    shared = connection_options()
    parser = Parser(
        prog="identity-admin",
        description="Administer the Tecken identity service: users, their "
        "permissions, API tokens, and the Auth0 block check.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[shared],
    )
    group = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )

    add_users(group, shared)
    add_tokens(group, shared)
    blocked = add_command(
        group,
        "is-blocked",
        commands.is_blocked,
        shared,
        "ask Auth0, live, whether an email is blocked; changes nothing",
    )
    blocked.add_argument("email")
    return parser
