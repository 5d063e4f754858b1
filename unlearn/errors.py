"""User-facing errors.

Every `UnlearnError` message names the problem and the fix. Entry points turn it into one
line on stderr, a non-zero exit and no partial output directory.
"""


class UnlearnError(Exception):
    """Bad input or an unavailable resource, explained for the user."""


class ConfigError(UnlearnError):
    """A configuration value that cannot work; raised before any expensive stage starts."""


def require(condition: bool, message: str, error: type[UnlearnError] = ConfigError) -> None:
    if not condition:
        raise error(message)
