"""The one base class of errors a user can fix by changing their input.

The CLI prints such an error as one line and exits with code 2; anything else is a bug and keeps
its traceback. Subclasses live where they are raised (bad conditions, configs, databases, ...).
"""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input: the message names the field and what is allowed."""
