"""The permissions the service knows, with Tecken's names.

Callers keep checking these exact strings, so they never change. A superuser
holds all of them.
"""

UPLOAD_SYMBOLS = "upload.upload_symbols"
UPLOAD_TRY_SYMBOLS = "upload.upload_try_symbols"
VIEW_ALL_UPLOADS = "upload.view_all_uploads"
MANAGE_TOKENS = "tokens.manage_tokens"

ALL: frozenset[str] = frozenset(
    (UPLOAD_SYMBOLS, UPLOAD_TRY_SYMBOLS, VIEW_ALL_UPLOADS, MANAGE_TOKENS)
)


def encode(permissions: frozenset[str] | set[str]) -> str:
    """Store a set of known permissions as one space-separated, sorted string."""
    return " ".join(sorted(permissions))


def decode(stored: str) -> frozenset[str]:
    """Read a stored permission string, ignoring names no longer known."""
    return frozenset(stored.split()) & ALL
