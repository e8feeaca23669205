"""The work behind each identity-admin subcommand, one function per command.

Each takes the client and the parsed arguments and returns a Report; failures
are raised, as the client's exceptions or as UsageError, and main turns them
into a message and an exit code.

SetPermissions replaces a user's whole set, so `grant` and `revoke` read the
user first and write the new set back. Two administrators changing the same
user at the same moment can therefore lose one change; a server call that adds
or removes single permissions, or a version check on SetPermissions, would
close that gap.
"""

import argparse
from collections.abc import Callable, Iterable

from tecken_identity import _errors as errors
from tecken_identity import _models as models
from tecken_identity import permissions as known
from tecken_identity._client import IdentityClient

from . import output
from .failures import UsageError
from .output import Report

Command = Callable[[IdentityClient, argparse.Namespace], Report]


def checked_permissions(names: Iterable[str]) -> list[str]:
    """Return permission names, sorted, or raise UsageError for an unknown one."""
    unknown = sorted(set(names) - known.ALL)
    if unknown:
        raise UsageError(
            f"unknown permission {unknown[0]!r}; known ones are "
            + ", ".join(sorted(known.ALL))
        )
    return sorted(set(names))


def user_or_none(client: IdentityClient, email: str) -> models.User | None:
    """Return the user with this email, or None if there is none yet."""
    try:
        return client.get_user(email)
    except errors.UserNotFound:
        return None


def change_report(change: models.UserChange) -> Report:
    """Report a user after SetPermissions."""
    text = output.user_fields(change.user)
    if change.created:
        text = "created a new user\n" + text
    return Report(
        data={"user": output.user_data(change.user), "created": change.created},
        text=text,
    )


def users_list(client: IdentityClient, args: argparse.Namespace) -> Report:
    """List every user, a page per call."""
    users = list(client.iter_users(page_size=args.page_size))
    return Report(
        data=[output.user_data(user) for user in users],
        text=output.users_table(users),
    )


def users_show(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Show one user."""
    user = client.get_user(args.email)
    return Report(data=output.user_data(user), text=output.user_fields(user))


def users_grant(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Add permissions to a user, creating the user if the email is new."""
    adding = checked_permissions(args.permissions)
    user = user_or_none(client, args.email)

    current = set(user.permissions) if user else set()
    change = client.set_permissions(args.email, sorted(current | set(adding)))
    return change_report(change)


def users_revoke(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Take permissions from a user; their tokens lose them at once."""
    removing = checked_permissions(args.permissions)
    user = client.get_user(args.email)

    # A superuser still holds everything; what changes is what they keep if
    # the superuser flag is taken away.
    change = client.set_permissions(
        args.email, sorted(set(user.permissions) - set(removing))
    )
    return change_report(change)


def users_superuser(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Make a user a superuser, or with --off take it away.

    Either way the user keeps the permissions granted to them, which the
    server reports apart from the superuser flag.
    """
    if args.off:
        granted = client.get_user(args.email).permissions
        change = client.set_permissions(args.email, granted, superuser=False)
        return change_report(change)

    user = user_or_none(client, args.email)
    current = user.permissions if user else ()
    change = client.set_permissions(args.email, current, superuser=True)
    return change_report(change)


def users_activate(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Activate a user; the Auth0 check runs again at their next use."""
    user = client.set_active(args.email, True)
    return Report(data=output.user_data(user), text=output.user_fields(user))


def users_deactivate(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Deactivate a user; every session and token of theirs stops working."""
    user = client.set_active(args.email, False)
    return Report(data=output.user_data(user), text=output.user_fields(user))


def tokens_list(client: IdentityClient, args: argparse.Namespace) -> Report:
    """List the caller's own tokens, never their keys."""
    tokens = client.list_tokens(args.state)
    return Report(
        data=[output.token_data(info) for info in tokens],
        text=output.tokens_table(tokens),
    )


def tokens_create(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Create a token for the caller; the key is printed alone on the last line."""
    granted = checked_permissions(args.permissions)
    created = client.create_token(granted, expires_in_days=args.days, notes=args.notes)

    text = "\n".join(
        (
            output.token_fields(created.info),
            "",
            "The key below is shown this once; store it now:",
            created.token,
        )
    )
    return Report(
        data={"token": created.token, "token_info": output.token_data(created.info)},
        text=text,
    )


def tokens_revoke(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Revoke a token by id."""
    client.revoke_token(args.token_id)
    return Report(
        data={"token_id": args.token_id, "revoked": True},
        text=f"revoked token {args.token_id}",
    )


def tokens_extend(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Move a token's expiry later."""
    info = client.extend_token(args.token_id, args.days)
    return Report(data=output.token_data(info), text=output.token_fields(info))


def is_blocked(client: IdentityClient, args: argparse.Namespace) -> Report:
    """Ask Auth0, live, whether an email is blocked."""
    status = client.is_blocked(args.email)
    return Report(
        data={"email": args.email, "status": status.value},
        text=status.value.replace("_", " "),
    )
