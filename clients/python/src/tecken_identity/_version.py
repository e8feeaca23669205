"""The version of the tecken-identity package."""

__version__ = "0.1.0"
