"""The command line: ``watcher run``, ``check``, ``once``, ...

Entry point: ``watcher.cli.main:main``; one module per family of commands.
"""
