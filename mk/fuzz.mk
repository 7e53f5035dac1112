# Fuzzing (issue 5): libFuzzer targets in tests/fuzz/, built with clang into
# build/fuzz/ and run on working copies of the committed seed corpora
# (tests/fuzz/corpus/<target>/, never written to). Included at the end of
# the Makefile, so LIB_SRC, HDR, CPPFLAGS, WARN and LDLIBS are its own.
#
#   make fuzz                 every target for FUZZ_SECONDS (60) each
#   make test-fuzz-short      every target for FUZZ_SHORT_SECONDS (20) each
#   make fuzz-build           only build them
#
# Knobs: FUZZ_CC (clang), FUZZ_ARGS (extra libFuzzer flags, e.g. -seed=1).
# A crash, leak, undefined behaviour or timeout fails the target; its input
# lands in build/fuzz/artifacts/ and its log in build/fuzz/logs/.

FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SHORT_SECONDS ?= 20
FUZZ_ARGS          ?=
FUZZ_SANITIZE      := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                      -fno-omit-frame-pointer
FUZZ_TARGETS       := fuzz_body fuzz_route fuzz_headers
FUZZ_BIN           := $(addprefix build/fuzz/,$(FUZZ_TARGETS))
FUZZ_OBJ           := $(patsubst cgi/%.c,build/fuzz/obj/%.o,$(LIB_SRC))

.PHONY: fuzz test-fuzz-short fuzz-build deps-fuzz
# Chained pattern rules: keep the objects (and folders) make would delete.
.SECONDARY: $(FUZZ_OBJ) build/fuzz/ build/fuzz/obj/

deps-fuzz:
	@bash scripts/deps.sh build fuzz

# The Makefile reads pkg-config's flags when a compile first needs them, and
# every compile waits for its deps group, so a fresh machine builds in one go.
fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@FUZZ_ARGS='$(FUZZ_ARGS)' bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

test-fuzz-short: fuzz-build
	@FUZZ_ARGS='$(FUZZ_ARGS)' bash tests/fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_TARGETS)

# The library is compiled once with the fuzzer's instrumentation and linked
# into each target (-fsanitize=fuzzer at link time supplies main()).
build/fuzz/obj/%.o: cgi/%.c $(HDR) | deps-fuzz build/fuzz/obj/
	$(FUZZ_CC) $(WARN) -O1 -g $(FUZZ_SANITIZE) $(CPPFLAGS) -c $< -o $@

# tests/fuzz/fuzz_common.h: what the targets share (CHECK(), the entry point).
# json-c is the fuzzers' reference parser only (fuzz_body); the worker has
# its own strict one (cgi/jsonscan.c).
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_common.h $(FUZZ_OBJ) $(HDR) | deps-fuzz build/fuzz/
	$(FUZZ_CC) $(WARN) -O1 -g $(FUZZ_SANITIZE) $(CPPFLAGS) $$(pkg-config --cflags json-c) $< \
	    $(FUZZ_OBJ) -o $@ $(LDLIBS) $$(pkg-config --libs json-c)
