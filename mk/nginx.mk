# The ops snippet nginx/chatpatch.conf (README "Deploying behind your own
# nginx") is generated: scripts/nginx_snippet.py fills nginx/chatpatch.conf.in
# with what `chatpatch --print-errors` prints from the API profiles.
#
#   make nginx-snippet        regenerate it (commit the result)
#   make test-nginx-snippet   fail when the committed file is not what the
#                             template and the current binary make
#                             (tests/nginx/); `make test` runs it

.PHONY: nginx-snippet test-nginx-snippet

test: test-nginx-snippet

nginx-snippet: build/chatpatch
	/usr/bin/python3 scripts/nginx_snippet.py --binary build/chatpatch -o nginx/chatpatch.conf

test-nginx-snippet: deps-test build/chatpatch
	CHATPATCH_BIN=$(CURDIR)/build/chatpatch $(PYTEST) -q -p no:cacheprovider tests/nginx
