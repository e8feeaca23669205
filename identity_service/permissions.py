"""The permissions the service knows, and how they are stored.

The names are Tecken's and live in the client package
(`tecken_identity.permissions`), so the server and its callers share one list;
callers keep checking these exact strings. A superuser holds all of them.
"""

from tecken_identity.permissions import (
    ALL,
    MANAGE_TOKENS,
    UPLOAD_SYMBOLS,
    UPLOAD_TRY_SYMBOLS,
    VIEW_ALL_UPLOADS,
)

__all__ = [
    "ALL",
    "MANAGE_TOKENS",
    "UPLOAD_SYMBOLS",
    "UPLOAD_TRY_SYMBOLS",
    "VIEW_ALL_UPLOADS",
    "decode",
    "encode",
]


def encode(permissions: frozenset[str] | set[str]) -> str:
    """Store a set of known permissions as one space-separated, sorted string."""
    return " ".join(sorted(permissions))


def decode(stored: str) -> frozenset[str]:
    """Read a stored permission string, ignoring names no longer known."""
    return frozenset(stored.split()) & ALL
