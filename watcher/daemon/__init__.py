"""``watcher run``: the composition root (``build``), the scheduler and signals
(``service``), systemd and metrics.
"""
