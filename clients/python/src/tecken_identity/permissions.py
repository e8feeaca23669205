"""The permission names the service knows, which are Tecken's own.

Callers keep checking these exact strings. A superuser holds all of them.
"""

UPLOAD_SYMBOLS = "upload.upload_symbols"
UPLOAD_TRY_SYMBOLS = "upload.upload_try_symbols"
VIEW_ALL_UPLOADS = "upload.view_all_uploads"
MANAGE_TOKENS = "tokens.manage_tokens"

ALL: frozenset[str] = frozenset(
    (UPLOAD_SYMBOLS, UPLOAD_TRY_SYMBOLS, VIEW_ALL_UPLOADS, MANAGE_TOKENS)
)
