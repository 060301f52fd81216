"""The base class of the errors a user can act on."""


class UserError(ValueError):
    """Bad input or settings: the message says what was wrong, where (file, row, key) and what to do.

    The ``mm-eureka`` command prints it as one line and exits 2; anything else is a bug and keeps
    its traceback."""
