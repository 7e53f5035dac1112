# chatpatch: see README.md. Every target that needs a tool installs it first
# (scripts/deps.sh), so a fresh Debian 12 machine needs nothing by hand.

CC        ?= cc
PKGS      := libpq nettle
WARN      := -std=c17 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla
# Asked of pkg-config when first used, once: on a fresh machine the -dev
# packages arrive only when `deps` has run, after this file was read.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CPPFLAGS  += -D_GNU_SOURCE -Icgi $(PKG_CFLAGS)
LDLIBS     = -lfcgi $(PKG_LIBS)
SANITIZE  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

SRC       := $(wildcard cgi/*.c)
LIB_SRC   := $(filter-out cgi/main.c,$(SRC))
HDR       := $(wildcard cgi/*.h)

.PHONY: all deps build build-test clean

all: build

deps:
	@bash scripts/deps.sh build

build: deps build/chatpatch
build-test: deps build/asan/chatpatch

build/chatpatch: $(SRC) $(HDR) | deps build/
	$(CC) $(WARN) -O2 -g $(CPPFLAGS) $(SRC) -o $@ $(LDLIBS)

# The sanitizer build is compiled once into objects that the worker and
# every unit test link.
ASAN_OBJ     := $(patsubst cgi/%.c,build/asan/obj/%.o,$(SRC))
ASAN_LIB_OBJ := $(filter-out build/asan/obj/main.o,$(ASAN_OBJ))

build/asan/obj/%.o: cgi/%.c $(HDR) | deps build/asan/obj/
	$(CC) $(WARN) -O1 -g $(SANITIZE) $(CPPFLAGS) -c $< -o $@

build/asan/chatpatch: $(ASAN_OBJ) | build/asan/
	$(CC) $(SANITIZE) $^ -o $@ $(LDLIBS)

.PRECIOUS: %/
%/:
	@mkdir -p $@

FORMAT_SRC = $(wildcard cgi/*.[ch] tests/unit/*.c tests/fuzz/*.[ch] bench/*.c)

.PHONY: format
format:
	clang-format -i $(FORMAT_SRC)

clean:
	rm -rf build

# ---- tests ------------------------------------------------------------------
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,build/unit/%,$(UNIT_SRC))
PYTEST    := /usr/bin/python3 -m pytest   # Debian's python3-* packages live here

.PHONY: test test-unit test-integration deps-test

deps-test:
	@bash scripts/deps.sh build run test

build/unit/%: tests/unit/%.c $(ASAN_LIB_OBJ) $(HDR) | deps-test build/unit/
	$(CC) $(WARN) -O1 -g $(SANITIZE) $(CPPFLAGS) $< $(ASAN_LIB_OBJ) -o $@ $(LDLIBS) -lcmocka

test: test-unit test-integration test-pgbouncer test-hosts test-fuzz-short test-bench


test-unit: deps-test $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# -rs prints why a test was skipped (test_worker_hosts.py where network
# namespaces cannot be made).
test-integration: deps-test build/asan/chatpatch
	CHATPATCH_BIN=$(CURDIR)/build/asan/chatpatch $(PYTEST) -q -rs -p no:cacheprovider tests/integration

# The three APIs' suites again, with pgbouncer (transaction mode) between the
# workers and PostgreSQL (test_pgbouncer.py runs in test-integration).
PGBOUNCER_SUITES := tests/integration/test_recoup.py tests/integration/test_neptun.py \
                    tests/integration/test_leanmcp.py tests/integration/test_security.py
.PHONY: test-pgbouncer
test-pgbouncer: deps-test build/asan/chatpatch
	PGBOUNCER=1 CHATPATCH_BIN=$(CURDIR)/build/asan/chatpatch $(PYTEST) -q -p no:cacheprovider \
	    $(PGBOUNCER_SUITES)


# The local stack (scripts/stack.sh; knobs such as PORT, PGPORT, WORKERS,
# STACK_DIR come from the environment).
.PHONY: run up down migrate

run: build
	@bash scripts/deps.sh run
	@bash scripts/stack.sh run

up: build
	@bash scripts/deps.sh run
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

# DATABASE_URL is read from the recipe's environment (make exports a
# variable given on its command line), so no make quoting can mangle it.
migrate:
	@if [ -z "$$DATABASE_URL" ]; then \
	    echo "usage: make migrate DATABASE_URL=postgresql://USER@HOST/DB" >&2; exit 2; fi
	@bash scripts/deps.sh run
	@bash scripts/migrate.sh "$$DATABASE_URL"

# Reliability targets, one fragment per topic: fuzzing, memcheck, soak, bench.
include $(wildcard mk/*.mk)
