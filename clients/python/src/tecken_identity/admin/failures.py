"""How identity-admin fails: exit codes, and the one line it prints.

The exit code tells a script what went wrong without parsing the message:

    0  success
    1  any other failure (no such user or token, a bug in the service)
    2  usage: bad options or arguments, or input the service refused
    3  denied: the key is missing, unknown, expired, or may not do this
    4  unavailable: the service or what it depends on did not answer in time
"""

from tecken_identity import _errors as errors

OK = 0
FAILED = 1
USAGE = 2
DENIED = 3
UNAVAILABLE = 4


class UsageError(Exception):
    """The command line asks for something that cannot be done as written."""


def exit_code(error: errors.IdentityError) -> int:
    """Return the exit code for a failed call."""
    if isinstance(error, errors.InvalidArgument):
        return USAGE
    if isinstance(error, errors.Unauthenticated | errors.PermissionDenied):
        return DENIED
    if isinstance(error, errors.Unavailable | errors.DeadlineExceeded):
        return UNAVAILABLE
    return FAILED


LABELS = {
    FAILED: "failed",
    USAGE: "usage error",
    DENIED: "denied",
    UNAVAILABLE: "unavailable",
}


def one_line(text: str) -> str:
    """Fold text onto one line, so every failure prints exactly one."""
    return " ".join(text.split())


def describe(code: int, message: str) -> str:
    """Return the line printed for a failure with this exit code."""
    return one_line(f"identity-admin: {LABELS[code]}: {message}")
