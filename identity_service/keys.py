"""Token keys: making them, reading them as callers send them, and hashing them.

A key is 32 random bytes written as 64 lowercase hex characters (256 bits).
Tecken's keys are 32 hex characters (128 bits) and keep working once imported,
since both kinds are found by the SHA-256 of the key. Hex keys contain no hyphen,
so everything after the first hyphen is a comment (`KEY-uploadscript`), as in
Tecken.

Only the SHA-256 of a key is stored. The database finds a row by that hash
through a unique index, and the hash is compared again with
`hmac.compare_digest`, so no step's timing depends on how much of a guess was
right. A key of 128 or more random bits makes the unsalted hash safe: there is
nothing to guess from it.
"""

import hashlib
import hmac
import re
import secrets

from . import errors

KEY_BYTES = 32
PREFIX_LENGTH = 4
MAX_SENT_LENGTH = 1024

# Tecken's 32-character keys and ours of 64; upper case is accepted because
# some scripts upper-case what they paste.
KEY_PATTERN = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


def new_key() -> str:
    """Return a fresh random key."""
    return secrets.token_hex(KEY_BYTES)


def parse(sent: str, *, field: str = "token") -> str:
    """Return the key in what a caller sent, without its comment.

    Raises errors.InvalidArgument (TOKEN_MALFORMED) naming the field when what
    was sent cannot be a key; the message never repeats the value.
    """
    if not sent:
        raise errors.InvalidArgument(errors.TOKEN_MALFORMED, field, "is empty")
    if len(sent) > MAX_SENT_LENGTH:
        raise errors.InvalidArgument(
            errors.TOKEN_MALFORMED,
            field,
            f"is longer than {MAX_SENT_LENGTH} characters",
        )

    key = sent.split("-", 1)[0].strip()
    if not KEY_PATTERN.fullmatch(key):
        raise errors.InvalidArgument(
            errors.TOKEN_MALFORMED, field, "is not a key of 32 or 64 hex characters"
        )
    return key.lower()


def digest(key: str) -> bytes:
    """Return the SHA-256 of a parsed key, as stored."""
    return hashlib.sha256(key.encode("ascii")).digest()


def same_digest(stored: bytes, computed: bytes) -> bool:
    """Compare a stored hash with a sent key's hash in constant time."""
    return hmac.compare_digest(stored, computed)


def prefix(key: str) -> str:
    """Return the part of a key shown in listings: 16 of its bits, no more."""
    return key[:PREFIX_LENGTH]
