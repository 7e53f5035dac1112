# Bench (scripts/bench.sh): for each API, wrk through nginx to the normal
# build's worker pool against pgbench running the worker's own statement
# (same text, prepared, same values) on the same database, for the same time
# at the same concurrency; then GET /healthz against the health statement.
# A private stack (scripts/stack.sh in a temp folder on free ports, stopped
# at the end) with bench/data.sql loaded. Included at the end of the
# Makefile.
#
#   make bench                              10 s per measurement, 16 connections, 4 workers
#   make bench BENCH_SECONDS=5 BENCH_CONNECTIONS=32 WORKERS=8
#
# Prints a table of req/s, TPS and their ratio (only ratios from the same
# run mean anything on a small shared machine) and the CPU each side used;
# raw outputs in build/bench/. Fails only on real errors: a non-2xx answer,
# a socket error or timeout, a pgbench error, updates that did not happen.
# More knobs (BENCH_CHATS, BENCH_THREADS, BENCH_AT_WORKERS, ...): see
# scripts/bench.sh.

BENCH_SECONDS     ?= 10
BENCH_CONNECTIONS ?= 16

.PHONY: bench deps-bench

deps-bench:
	@bash scripts/deps.sh build run bench

# The helper that prints each API's statement from the worker's own
# profiles, for pgbench's script.
build/bench/sqltext: bench/sqltext.c $(filter cgi/api%.c,$(SRC)) $(HDR) | deps build/bench/
	$(CC) $(WARN) -O1 $(CPPFLAGS) $< $(filter cgi/api%.c,$(SRC)) -o $@

# The Makefile reads pkg-config's flags when a compile first needs them, and
# every compile waits for its deps group, so a fresh machine builds in one go.
bench: build/chatpatch build/bench/sqltext | deps-bench
	@BENCH_DEPS_DONE=1 BENCH_SECONDS='$(BENCH_SECONDS)' BENCH_CONNECTIONS='$(BENCH_CONNECTIONS)' \
	    WORKERS='$(or $(WORKERS),4)' bash scripts/bench.sh
