"""Pure evaluation: the alert lifecycle, built-in alerts as facts, look-back.

No I/O; time is an argument, so tests never sleep. Imports ``core`` and ``config``'s model.
"""
