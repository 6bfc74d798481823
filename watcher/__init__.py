"""watcher: balance alerts for a MEXC account, delivered through apprise."""

__version__ = "0.1.0"

# The stages, bottom to top: each imports only those before it (tests/test_house.py).
STAGES = (
    "core",
    "net",
    "config",
    "sources",
    "engine",
    "store",
    "notify",
    "app",
    "telegram",
    "daemon",
    "cli",
)
