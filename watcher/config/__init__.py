"""Settings and the rules file: loading, locations, the model.

Parsing is pure (syntax and meaning, no environment, apprise or ccxt): ``rules_file``
compiles a file into the ``model``; ``resolve`` expands its ``${VAR}``s when a command
starts. Imports only ``core``.
"""
