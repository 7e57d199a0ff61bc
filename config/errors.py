"""The base of every error a user can fix: the command line turns it into exit 2 and its message."""

from __future__ import annotations


class LapseError(Exception):
    """A problem with the user's input (data, settings, arguments); the message names the file, key or row."""


class ConfigError(LapseError, ValueError):
    """A setting is unknown, badly typed or out of range; the message names where it was set and the key."""
