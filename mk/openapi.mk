# The OpenAPI document (docs/openapi.yaml; README "The OpenAPI document"):
#
#   make test-openapi   lint it with Redocly CLI (pinned in
#                       tests/openapi/package-lock.json, installed with npm ci),
#                       and compare it with the worker's own profiles and test
#                       the integration tests' validator (tests/openapi/)
#   make openapi-html   render it to build/openapi/chatpatch-api.html
#
# The integration tests (make test-integration) check every answer they get
# against the same document (tests/integration/openapi_check.py). Included
# at the end of the Makefile; `make test` runs test-openapi (below).

OPENAPI_DOC  := docs/openapi.yaml
OPENAPI_DIR  := tests/openapi
REDOCLY      := $(OPENAPI_DIR)/node_modules/.bin/redocly
# No telemetry, no update check: the run is the same offline and online.
REDOCLY_ENV  := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

.PHONY: test-openapi openapi-lint openapi-html deps-openapi

test: test-openapi

# Node.js and npm (Debian's when none is on the PATH), and what the tests
# import (python3-yaml, python3-jsonschema, pytest): deps.sh's openapi group.
deps-openapi:
	@bash scripts/deps.sh build openapi

# The linter's packages, exactly as locked; again only when the lock changes.
$(OPENAPI_DIR)/node_modules/.package-lock.json: $(OPENAPI_DIR)/package-lock.json $(OPENAPI_DIR)/package.json | deps-openapi
	cd $(OPENAPI_DIR) && npm ci --no-audit --no-fund --loglevel=error

# The profiles as JSON, from the worker's own sources (tests/openapi/profiles.c).
build/openapi/profiles: $(OPENAPI_DIR)/profiles.c $(LIB_SRC) $(HDR) | deps build/openapi/
	$(CC) $(WARN) -O1 $(CPPFLAGS) $< $(LIB_SRC) -o $@ $(LDLIBS)

openapi-lint: $(OPENAPI_DIR)/node_modules/.package-lock.json
	$(REDOCLY_ENV) $(REDOCLY) lint --config $(OPENAPI_DIR)/redocly.yaml \
	    --max-problems 1000 $(OPENAPI_DOC)

test-openapi: openapi-lint build/openapi/profiles build/chatpatch | deps-openapi
	$(PYTEST) -q -p no:cacheprovider $(OPENAPI_DIR)/test_document.py

openapi-html: $(OPENAPI_DIR)/node_modules/.package-lock.json | build/openapi/
	$(REDOCLY_ENV) $(REDOCLY) build-docs $(OPENAPI_DOC) -o build/openapi/chatpatch-api.html
