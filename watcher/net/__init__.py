"""The hardened HTTP client that sources, the Telegram bot and the heartbeat share.

Deadlines, a size cap after decompression, no redirects, a JSON depth limit, watched
connections that cut a dripping answer. Imports only ``core``.
"""
