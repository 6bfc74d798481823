"""The command line: ``watcher run``, ``check``, ``once``, ... (entry point: ``watcher.cli.main:main``)."""
