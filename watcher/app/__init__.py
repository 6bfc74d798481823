"""One poll end to end (``poll``), the accounts and their reloads (``accounts``), the
daily digest (``daily``), the start-up check (``preflight``), replay and rule tests.
"""
