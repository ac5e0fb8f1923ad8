"""zoo's exceptions. Each message is one line that says what went wrong and what to do."""
from __future__ import annotations

__all__ = ["ZooError", "RegistryError", "PluginError", "UnknownNameError", "WeightsError",
           "RequestError",
           "LoadError", "DataError", "DataWarning"]


class ZooError(Exception):
    """Base class: the CLI prints these as ``error: <message>`` and exits 1."""


class RegistryError(ZooError):
    """A registry entry (registry.toml or a plugin registration) is malformed."""


class PluginError(ZooError):
    """A plugin failed to load or registered something invalid (fatal only when strict)."""


class UnknownNameError(RegistryError, KeyError):
    """A model or component name that nothing registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ZooError):
    """Pretrained weights could not be found, read or verified."""


class LoadError(ZooError):
    """A saved model could not be loaded (missing plugin, bad config, tampered files)."""


class DataError(ZooError):
    """Bad input data (a manifest line, a file that cannot be decoded)."""


class DataWarning(UserWarning):
    """Training data a task can learn nothing useful from (one class only, ...): a task
    warns with it in ``prepare``; ``zoo train`` stops on it unless ``--force``."""


class RequestError(ZooError):
    """A serving request that cannot be answered as sent: 400 (malformed), 413 (over a
    limit, which the message names with how to raise it) or 422 (an impossible value)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
