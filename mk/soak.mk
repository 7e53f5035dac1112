# Soak: mixed valid and invalid traffic for all three APIs (wrk with a Lua
# script, scripts/soak.sh) through nginx to the normal build's worker pool
# on a private stack (scripts/stack.sh in a temp folder on free ports,
# stopped at the end). Every request kind must get its one expected status;
# the workers' RSS is taken after a warm-up and at the end. Included at the
# end of the Makefile.
#
#   make soak                              300 s, 4 workers, 8 clients
#   make soak SOAK_SECONDS=60 WORKERS=2 SOAK_CLIENTS=16
#
# Fails on any unexpected status, socket error, a worker that died, or RSS
# growth of SOAK_MAX_GROWTH (5) % or more.

SOAK_SECONDS    ?= 300
SOAK_CLIENTS    ?= 8
SOAK_MAX_GROWTH ?= 5

.PHONY: soak deps-soak

deps-soak:
	@bash scripts/deps.sh build run bench

# The Makefile reads pkg-config's flags when a compile first needs them, and
# every compile waits for its deps group, so a fresh machine builds in one go.
soak: build/chatpatch | deps-soak
	@SOAK_DEPS_DONE=1 SOAK_SECONDS='$(SOAK_SECONDS)' WORKERS='$(or $(WORKERS),4)' \
	    SOAK_CLIENTS='$(SOAK_CLIENTS)' SOAK_MAX_GROWTH='$(SOAK_MAX_GROWTH)' \
	    bash scripts/soak.sh
