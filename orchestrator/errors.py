"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class OrchError(Exception):
    """A problem the user can act on. The message names what is wrong and what to do."""

    exit_code = 2


class InputError(OrchError):
    """A file, frame, flag or value that fails validation."""


class ChipError(OrchError):
    """A chip that does not answer, answers wrongly, or is gone."""

    exit_code = 3
