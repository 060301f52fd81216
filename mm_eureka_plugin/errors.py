"""The base class of the errors a user can act on."""


class UserError(ValueError):
    """Bad input or settings: the message says what was wrong, where (file, row, key) and what to do.

    The ``mm-eureka`` command prints it as one line and exits 2; anything else is a bug and keeps
    its traceback."""


class RunInterrupted(Exception):
    """A run stopped by a signal (SIGTERM from a scheduler's preemption, SIGINT from Ctrl-C).

    The message says what was kept and how to go on; the ``mm-eureka`` command prints it and exits
    with ``128 + signum`` (143 for SIGTERM, 130 for SIGINT), as a shell reports such an end."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
