"""Local fakes of the services watcher talks to, for tests and the demo: MEXC's web
endpoints and a Bypass gateway (``exchange``, ``python -m watcher.sim``), MEXC's and Bybit's
official APIs, and a ``json://`` receiver. Imports only ``core``.
"""
