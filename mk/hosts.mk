# The three APIs' suites behind each web server other than the stack's own
# nginx (issue 10; tests/integration/hosts.py, README "Other web servers").
# Each host gets a stack of its own and runs beside it on its own port, so
# `make -j test-hosts` runs the hosts at once.
#
#   make test-hosts                       every host in hosts.py's registry
#   make test-host-apache-fcgid           one of them

# The registry in hosts.py is the one list of hosts.
TEST_HOSTS = $(eval TEST_HOSTS := $$(shell cd tests/integration && \
    /usr/bin/python3 -c 'import hosts; print(*(n for n in hosts.HOSTS if n != "nginx"))'))$(TEST_HOSTS)
HOST_SUITES := tests/integration/test_recoup.py tests/integration/test_neptun.py \
               tests/integration/test_leanmcp.py tests/integration/test_host_answers.py
# And, for some hosts, the tests of what that host answers itself (README,
# "What the server answers itself"): nginx + fcgiwrap is the nginx snippet.
HOST_SUITES_lighttpd       := tests/integration/test_lighttpd.py
HOST_SUITES_nginx-fcgiwrap := tests/integration/test_nginx_paths.py tests/integration/test_fcgiwrap.py

.PHONY: test-hosts deps-hosts
deps-hosts:
	@bash scripts/deps.sh build run test hosts

test-hosts: deps-hosts
	@$(MAKE) --no-print-directory $(addprefix test-host-,$(TEST_HOSTS))

# The sanitizer build, but for nginx + fcgiwrap, which starts the binary for
# every request: ASan's start-up made that run 4.5 minutes, against under
# 2 with the build ops run (CGI mode under ASan: test_process_modes.py).
HOST_BIN                := build/asan/chatpatch
HOST_BIN_nginx-fcgiwrap := build/chatpatch

test-host-%: deps-hosts build/asan/chatpatch build/chatpatch
	CHATPATCH_HOST=$* CHATPATCH_BIN=$(CURDIR)/$(or $(HOST_BIN_$*),$(HOST_BIN)) $(PYTEST) -q -rxs \
	    -p no:cacheprovider $(HOST_SUITES) $(HOST_SUITES_$*)

