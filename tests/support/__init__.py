"""Harnesses the tests of every stage share: clocks, receivers, a SOCKS fake, the daemon."""
