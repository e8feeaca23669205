"""Checks of request fields, each raising an error that names the field.

Messages describe what is wrong without repeating the value, so no email or
key reaches an error message or a log through them.
"""

import re
import unicodedata
from collections.abc import Iterable

from . import errors
from . import permissions as perms

MAX_EMAIL_LENGTH = 254
MAX_NOTES_LENGTH = 1000
MAX_DAYS = 3650
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
MAX_TOKEN_ID_LENGTH = 32
MAX_PERMISSIONS = 64
NO_PERMISSIONS: frozenset[str] = frozenset()

# What an address may hold beyond letters and digits. Quotes, brackets,
# backslashes, colons, commas and whitespace are refused: real addresses here
# never use them, and they are what a query language would read as syntax.
EMAIL_LOCAL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+")
EMAIL_DOMAIN = re.compile(r"[\w-]+(\.[\w-]+)+")
TOKEN_ID = re.compile(r"[0-9a-f]{32}")


def email(value: str, field: str = "email") -> str:
    """Return the email stripped of surrounding spaces, or raise EMAIL_INVALID."""
    candidate = value.strip()
    if not candidate:
        raise errors.InvalidArgument(errors.EMAIL_INVALID, field, "is empty")
    # Folding for comparison can lengthen an email (U+0130 lowercases to two
    # characters), and the folded form is what is stored and indexed.
    if max(len(candidate), len(candidate.lower())) > MAX_EMAIL_LENGTH:
        raise errors.InvalidArgument(
            errors.EMAIL_INVALID, field, f"is longer than {MAX_EMAIL_LENGTH} characters"
        )
    if any(unicodedata.category(char).startswith(("C", "Z")) for char in candidate):
        raise errors.InvalidArgument(
            errors.EMAIL_INVALID, field, "contains spaces or control characters"
        )

    local, at, domain = candidate.rpartition("@")
    if not at or not EMAIL_LOCAL.fullmatch(local) or not EMAIL_DOMAIN.fullmatch(domain):
        raise errors.InvalidArgument(
            errors.EMAIL_INVALID,
            field,
            "is not an email address of the form name@domain",
        )
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise errors.InvalidArgument(
            errors.EMAIL_INVALID, field, "has a misplaced dot before the @"
        )
    return candidate


def permission_set(values: Iterable[str], field: str = "permissions") -> frozenset[str]:
    """Return the named permissions, or raise PERMISSION_UNKNOWN for a bad name."""
    if not values:
        # ValidateToken's common case: nothing required.
        return NO_PERMISSIONS
    names = list(values)
    if len(names) > MAX_PERMISSIONS:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, field, f"has more than {MAX_PERMISSIONS} entries"
        )

    for index, name in enumerate(names):
        if name not in perms.ALL:
            known = ", ".join(sorted(perms.ALL))
            raise errors.InvalidArgument(
                errors.PERMISSION_UNKNOWN,
                f"{field}[{index}]",
                f"is not a known permission; known ones are {known}",
            )
    return frozenset(names)


def notes(value: str) -> str:
    """Return token notes, or raise FIELD_INVALID when too long or unprintable."""
    if len(value) > MAX_NOTES_LENGTH:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID,
            "notes",
            f"is longer than {MAX_NOTES_LENGTH} characters",
        )
    if any(unicodedata.category(char) == "Cc" and char not in "\t\n" for char in value):
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "notes", "contains control characters"
        )
    return value


def days(value: int, field: str, *, default: int | None = None) -> int:
    """Return a number of days from 1 to MAX_DAYS; 0 means default when given."""
    if value == 0 and default is not None:
        return default
    if not 1 <= value <= MAX_DAYS:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, field, f"must be from 1 to {MAX_DAYS} days"
        )
    return value


def token_id(value: str) -> str:
    """Return a token id, or raise FIELD_INVALID when it cannot be one."""
    if not value:
        raise errors.InvalidArgument(errors.FIELD_INVALID, "token_id", "is empty")
    if not TOKEN_ID.fullmatch(value):
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "token_id", "is not a token id (32 hex characters)"
        )
    return value


def page_size(value: int) -> int:
    """Return a page size: 0 means the default, more than MAX_PAGE_SIZE is refused."""
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "page_size", f"must be from 0 to {MAX_PAGE_SIZE}"
        )
    return value


def short_text(value: str, field: str, *, limit: int = 4096) -> str:
    """Return a required text field no longer than limit, free of control characters.

    The fields checked here (login codes, states, URLs) are printable text
    when genuine. PostgreSQL refuses NUL in text parameters outright, so a
    value carrying one must be refused here rather than reach a query.
    """
    if not value:
        raise errors.InvalidArgument(errors.FIELD_INVALID, field, "is empty")
    if len(value) > limit:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, field, f"is longer than {limit} characters"
        )
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, field, "contains control characters"
        )
    return value
