# Memcheck (valgrind): every request of the committed corpus
# tests/memcheck/requests/ through the normal build (build/chatpatch) in CGI
# mode under valgrind's memcheck, against a private stack (scripts/stack.sh
# in a temp folder on free ports, stopped at the end), plus requests with
# the database unreachable (the 503 path). Included at the end of the
# Makefile.
#
#   make memcheck                 the whole corpus
#   make memcheck MEMCHECK_REQUESTS='tests/memcheck/requests/0[1-3]*.req'
#
# Knobs: MEMCHECK_JOBS (parallel valgrind runs, default: CPUs),
# VALGRIND_ARGS (extra valgrind options), MEMCHECK_KEEP_STACK=1.
# Logs (valgrind's, the worker's output) land in build/memcheck/logs/.
# Any valgrind error, definite or indirect leak, or unexpected status fails
# the target; "still reachable" blocks do not.

MEMCHECK_REQUESTS ?=

.PHONY: memcheck deps-memcheck

deps-memcheck:
	@bash scripts/deps.sh build run memcheck

# The Makefile reads pkg-config's flags when a compile first needs them, and
# every compile waits for its deps group, so a fresh machine builds in one go.
memcheck: build/chatpatch | deps-memcheck
	@MEMCHECK_DEPS_DONE=1 MEMCHECK_JOBS='$(MEMCHECK_JOBS)' VALGRIND_ARGS='$(VALGRIND_ARGS)' \
	    bash scripts/memcheck.sh $(MEMCHECK_REQUESTS)
