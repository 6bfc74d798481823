"""The bottom of the house: types every stage shares, and no I/O.

``errors`` (one exception tree), ``models`` (balances, ``NoData``), ``alerts`` (instances,
notices, standings), ``durations``, ``secrets`` (every mask) and ``logs``
(structlog, configured once). Imports no other stage.
"""
