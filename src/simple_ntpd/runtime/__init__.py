"""The shell: sockets, processes, shared memory, timers. All I/O lives here and in daemon/."""
