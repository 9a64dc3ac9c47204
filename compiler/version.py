"""The compiler's version (also the artifact's ``compiler_version``)."""

__version__ = "0.1.0"
