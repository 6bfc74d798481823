"""watcher: balance alerts for a MEXC account, delivered through apprise."""

__version__ = "0.1.0"
