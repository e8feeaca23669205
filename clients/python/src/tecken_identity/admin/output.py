"""What identity-admin prints: readable tables by default, JSON with --json.

Each command returns a Report holding both forms, so that the two never tell
different stories: `data` is what `--json` prints, `text` what a person sees.
"""

import dataclasses
import datetime
import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any

from tecken_identity import _models as models


@dataclasses.dataclass(frozen=True)
class Report:
    """What one command prints, in both forms."""

    data: Any
    text: str


def json_default(value: object) -> object:
    """Write the values json cannot: datetimes as ISO 8601, enums as their value."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    """Return data as indented JSON."""
    return json.dumps(data, default=json_default, indent=2, sort_keys=True)


def when(value: datetime.datetime | None) -> str:
    """Return a time short enough for a table, in UTC."""
    if value is None:
        return "-"
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def yes_no(value: bool) -> str:
    """Return a bool as a person would write it."""
    return "yes" if value else "no"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Return rows under headers, each column as wide as its widest cell."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[index]) for line in lines) for index in range(len(headers))]

    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def fields(pairs: Iterable[tuple[str, str]]) -> str:
    """Return name: value lines with the values aligned."""
    items = list(pairs)
    width = max(len(name) for name, _ in items) + 1
    return "\n".join(f"{name + ':':<{width}} {value}" for name, value in items)


def permissions(values: Sequence[str]) -> str:
    """Return a permission list for a table cell."""
    return ", ".join(values) if values else "-"


def activity(user: models.User) -> str:
    """Return whether a user is active, and why not."""
    if user.active:
        return "yes"
    if user.inactive_reason is None:
        return "no"
    return f"no ({user.inactive_reason.value})"


def user_data(user: models.User) -> dict[str, Any]:
    """Return a user as a JSON object."""
    return dataclasses.asdict(user)


def user_fields(user: models.User) -> str:
    """Return one user as aligned fields."""
    return fields(
        [
            ("email", user.email),
            ("active", activity(user)),
            ("superuser", yes_no(user.superuser)),
            ("permissions", permissions(user.permissions)),
            ("created", when(user.create_time)),
            ("last login", when(user.last_login_time)),
            ("auth0 check", when(user.auth0_check_time)),
        ]
    )


def held(user: models.User) -> str:
    """Return a user's permissions for a table, a superuser's in one word."""
    return "all" if user.superuser else permissions(user.permissions)


def users_table(users: Sequence[models.User]) -> str:
    """Return users as a table."""
    if not users:
        return "no users"
    return table(
        ("EMAIL", "ACTIVE", "SUPERUSER", "PERMISSIONS", "LAST LOGIN"),
        (
            (
                user.email,
                activity(user),
                yes_no(user.superuser),
                held(user),
                when(user.last_login_time),
            )
            for user in users
        ),
    )


def token_state(info: models.TokenInfo) -> str:
    """Return whether a token works, as one word."""
    if info.revoked:
        return "revoked"
    return "expired" if info.expired else "active"


def token_data(info: models.TokenInfo) -> dict[str, Any]:
    """Return a token's description as a JSON object."""
    return {**dataclasses.asdict(info), "state": token_state(info)}


def token_fields(info: models.TokenInfo) -> str:
    """Return one token's description as aligned fields."""
    return fields(
        [
            ("id", info.token_id),
            ("key prefix", info.key_prefix),
            ("permissions", permissions(info.permissions)),
            ("notes", info.notes or "-"),
            ("created", when(info.create_time)),
            ("expires", when(info.expire_time)),
            ("state", token_state(info)),
        ]
    )


def tokens_table(tokens: Sequence[models.TokenInfo]) -> str:
    """Return token descriptions as a table."""
    if not tokens:
        return "no tokens"
    return table(
        ("ID", "PREFIX", "PERMISSIONS", "EXPIRES", "STATE", "NOTES"),
        (
            (
                info.token_id,
                info.key_prefix,
                permissions(info.permissions),
                when(info.expire_time),
                token_state(info),
                info.notes.splitlines()[0] if info.notes else "-",
            )
            for info in tokens
        ),
    )
