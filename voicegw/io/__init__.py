"""I/O adapters: the only modules that touch sockets, files, threads and devices."""
