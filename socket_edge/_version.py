"""The version, written once: pyproject.toml reads it (setuptools dynamic version), the code
imports it from here (a leaf module: importing it imports nothing else)."""

__version__ = "0.1.0"
