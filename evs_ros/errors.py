"""How evs_ros reports a problem the user must fix: one line, no traceback.

Every executable and command catches :data:`USER_ERRORS` at its edge and prints
:func:`one_line` of it (commands and executables then exit with code 2).
"""

USER_ERRORS = (ValueError, FileNotFoundError, ImportError, LookupError)
"""Errors that are the user's to fix (a refused setting, a missing file or package)."""


def one_line(error: BaseException) -> str:
    """Return the first line of ``error``'s message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
