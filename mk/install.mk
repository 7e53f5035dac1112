# Install (issue 10): the normal build, its man page and the files that
# come with it, laid out as a package would (README, "Install layout").
# Included at the end of the Makefile.
#
#   make install                               under /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/pkg  staged, for a package
#
# The man page chatpatch(8) is made by help2man from `chatpatch --help`
# and `--version` plus doc/chatpatch.h2m, so each option is written once
# (in cgi/main.c). Paths in the units and the man page follow PREFIX.

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share/chatpatch
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install

DEPLOY_FILES := $(shell find deploy -type f 2>/dev/null | sort)
NGINX_FILES  := $(wildcard nginx/*.conf)
SQL_FILES    := $(wildcard sql/*.sql)

.PHONY: install man deps-man

deps-man:
	@bash scripts/deps.sh man

man: build/chatpatch.8

build/chatpatch.8: build/chatpatch doc/chatpatch.h2m | deps-man
	help2man --section=8 --no-info --include=doc/chatpatch.h2m \
	    --output=$@ ./build/chatpatch

# The units name the binary and the man page names folders: rewritten for
# the PREFIX given. share/chatpatch/errors holds the hosts' own answers in
# the APIs' JSON, which Apache's and lighttpd's recipes read: the installed
# binary's --print-errors, and nothing else, so an upgrade drops the bodies
# of a route the new binary no longer serves.
install: build/chatpatch build/chatpatch.8
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/nginx
	$(INSTALL) -m 0755 build/chatpatch $(DESTDIR)$(SBINDIR)/chatpatch
	rm -rf $(DESTDIR)$(DATADIR)/errors
	umask 022 && ./build/chatpatch --print-errors $(DESTDIR)$(DATADIR)/errors
	sed -e 's|/usr/local/share/chatpatch|$(DATADIR)|g' \
	    -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' build/chatpatch.8 \
	    > $(DESTDIR)$(MANDIR)/man8/chatpatch.8
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/chatpatch.8
	$(INSTALL) -m 0644 $(SQL_FILES) $(DESTDIR)$(DATADIR)/sql/
	$(INSTALL) -D -m 0755 scripts/migrate.sh $(DESTDIR)$(DATADIR)/scripts/migrate.sh
	$(INSTALL) -m 0644 $(NGINX_FILES) $(DESTDIR)$(DATADIR)/nginx/
	for f in $(DEPLOY_FILES); do \
	    $(INSTALL) -D -m 0644 $$f $(DESTDIR)$(DATADIR)/$$f || exit 1; done
	for f in deploy/systemd/*.service deploy/systemd/*.socket; do \
	    sed -e 's|/usr/local/sbin/chatpatch|$(SBINDIR)/chatpatch|g' $$f \
	        > $(DESTDIR)$(UNITDIR)/$${f##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${f##*/} \
	        || exit 1; done
