"""User-facing errors.

Everything the user can fix (a bad parameter, a missing file, an unreachable Hub id)
raises :class:`ConfigError` (or a subclass) with a one-line message that says what is
wrong and how to fix it. The CLI prints that line and exits with status 2; notebooks
show it as the cell's error.
"""


class ConfigError(Exception):
    """An error in the user's input: parameters, paths, registry names, data."""


class ModelNotFoundError(ConfigError):
    """A model name is neither in the registry, nor a local folder, nor reachable on the Hub."""


class DataError(ConfigError):
    """Input data that cannot be used (empty, not UTF-8, not JSON, no text field, ...)."""
