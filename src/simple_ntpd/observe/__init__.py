"""Pure renderers of the server's state for operators: Prometheus metrics and health.

Nothing here reads a clock, a file or a socket: the shell passes snapshots
(counters, the served-clock state, source states) and the current time in.
"""
