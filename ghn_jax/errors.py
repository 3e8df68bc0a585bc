"""User-facing error types. Each names what was wrong and what to do about it.

Entry points catch `GhnError` and print its message as a single line (no traceback).
"""


class GhnError(Exception):
    """Base class of every error ghn_jax reports to users."""


class UnknownArchError(GhnError, KeyError):
    """An architecture name that is not in the zoo."""

    def __str__(self):  # KeyError would quote the message.
        return str(self.args[0]) if self.args else ""


class UnsupportedOpError(GhnError):
    """The model uses an op or layer that a GHN cannot represent."""


class NotAClassifierError(GhnError):
    """The model's (main) output does not come from a classifier layer."""


class ParamConversionError(GhnError):
    """Parameters do not match the model they are loaded into."""
