# Bench (scripts/bench.sh, bench/run.py; bench/README.md): on a private
# stack, for each concurrency and API, back to back: the ceiling (pgbench -M
# prepared running the worker's own statement), chatpatch through nginx
# (wrk), and the Node peer through the same nginx (Recoup); then the hostile
# bodies of issue 8. Writes var/bench/result.txt and result.png. Included at
# the end of the Makefile.
#
#   make bench                                      10 s a run, 100,000 chats per API
#   make bench BENCH_SECONDS=3 BENCH_CHATS=20000 BENCH_CONCURRENCY="8 32"
#   make bench BENCH_CHATS=2000000 BENCH_ROUNDS=2 WORKERS=8 DB_CONNECTIONS=4
#   make bench-statements                           instructions per statement (1 min)
#
# Fails only on real errors: a non-2xx answer, an unexpected status or body,
# a socket error or timeout, a pgbench error, a run that updated nothing, a
# peer that answers otherwise than chatpatch; never on a number. More knobs:
# scripts/bench.sh. `make test-bench` tests the bench's own Python.

BENCH_SECONDS     ?= 10
BENCH_CHATS       ?= 100000
BENCH_ROUNDS      ?= 1
BENCH_CONCURRENCY ?= 1 8 32 128
PEER_DIR          := bench/peer

.PHONY: bench bench-statements deps-bench test-bench

deps-bench:
	@bash scripts/deps.sh build run bench

# The helper that prints each API's statement, route and statement values
# from the worker's own profiles and engine.
build/bench/sqltext: bench/sqltext.c $(LIB_SRC) $(HDR) | deps build/bench/
	$(CC) $(WARN) -O1 $(CPPFLAGS) $< $(LIB_SRC) -o $@ $(LDLIBS)

# The peer's packages, exactly as locked; again only when the lock changes.
$(PEER_DIR)/node_modules/.package-lock.json: $(PEER_DIR)/package-lock.json $(PEER_DIR)/package.json | deps-bench
	cd $(PEER_DIR) && npm ci --no-audit --no-fund --loglevel=error

# The Makefile reads pkg-config's flags when a compile first needs them, and
# every compile waits for its deps group, so a fresh machine builds in one go.
bench: build/chatpatch build/bench/sqltext $(PEER_DIR)/node_modules/.package-lock.json | deps-bench
	@BENCH_DEPS_DONE=1 BENCH_SECONDS='$(BENCH_SECONDS)' BENCH_CHATS='$(BENCH_CHATS)' \
	    BENCH_ROUNDS='$(BENCH_ROUNDS)' BENCH_CONCURRENCY='$(BENCH_CONCURRENCY)' \
	    WORKERS='$(or $(WORKERS),4)' DB_CONNECTIONS='$(or $(DB_CONNECTIONS),8)' \
	    NGINX_WORKERS='$(NGINX_WORKERS)' \
	    bash scripts/bench.sh

# Each API's statement and the peer's, in PostgreSQL instructions per
# execution (callgrind): repeatable where CPU microseconds are not.
bench-statements: build/bench/sqltext | deps-bench deps-memcheck
	cd bench && /usr/bin/python3 stmtcost.py --chats '$(BENCH_CHATS)'

test-bench: build/bench/sqltext | deps-bench

	cd bench && /usr/bin/python3 -m unittest discover -s tests -t . -v
	node --check $(PEER_DIR)/server.js
