"""Delivery: routing and grouping from the outbox, message formatting, the apprise
adapter, the daily digest's text and the heartbeat pings.
"""
