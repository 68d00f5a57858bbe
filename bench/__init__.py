"""`make bench`: throughput, latency, zero-loss accounting and memory of the whole
stack on PostgreSQL, next to a bare Falcon baseline. See bench/README.md."""
