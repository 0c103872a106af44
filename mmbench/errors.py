"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MmbenchError(Exception):
    """A problem with the user's input or environment, reported as one line (exit 2)."""

    exit_code = 2
