"""Errors a user's data can cause; the message names the input and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used, with a message that names the input and the fix."""


class SkippedFilesWarning(UserWarning):
    """Some input files could not be read and were left out (see the message for the list)."""
