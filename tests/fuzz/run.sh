#!/usr/bin/env bash
# Runs libFuzzer targets built by mk/fuzz.mk, each for a bounded time, on a
# working copy of its committed seed corpus, and prints one summary line per
# target. Exits non-zero when any target crashed, leaked, hit undefined
# behaviour or timed out (its artifact is kept in $FUZZ_OUT/artifacts/).
#
# Usage: tests/fuzz/run.sh SECONDS TARGET...
# Environment: FUZZ_OUT (build/fuzz), FUZZ_SEEDS (tests/fuzz/corpus),
#              FUZZ_ARGS (extra libFuzzer flags, e.g. -seed=1).
set -uo pipefail

seconds=${1:?usage: run.sh SECONDS TARGET...}
shift
out=${FUZZ_OUT:-build/fuzz}
seeds=${FUZZ_SEEDS:-tests/fuzz/corpus}
dict=tests/fuzz/json.dict
read -r -a extra <<<"${FUZZ_ARGS:-}"

# Sanitizer reports with stack traces; a leak or any UB ends the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$out/artifacts" "$out/logs"
failed=()
summary=()
for t in "$@"; do
    bin=$out/$t
    corpus=$out/corpus/$t
    log=$out/logs/$t.log
    [ -x "$bin" ] || { echo "fuzz: $bin is not built" >&2; exit 2; }

    # A writable copy: libFuzzer adds new inputs to the first corpus folder,
    # which must never be the committed one. Inputs found by earlier runs
    # are kept; committed seeds (crash-* regressions included) are re-added.
    mkdir -p "$corpus"
    if [ -d "$seeds/$t" ]; then
        cp -p -n -r "$seeds/$t"/. "$corpus"/
    fi

    opts=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
          -artifact_prefix="$out/artifacts/$t-")
    case $t in
        fuzz_body) opts+=(-max_len=65536 -dict="$dict") ;;
        *) opts+=(-max_len=8192) ;;
    esac

    echo "fuzz: $t for ${seconds}s (log: $log)"
    "$bin" "${opts[@]}" "${extra[@]}" "$corpus" >"$log" 2>&1
    rc=$?

    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n1 | grep -o 'cov: [0-9]*' | grep -o '[0-9]*$')
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{n += $1} END {print n + 0}')
    status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        failed+=("$t")
        # The report: from the first sanitizer or libFuzzer error line on.
        grep -n -m1 -E '^==[0-9]+==|invariant broken|runtime error|^ALARM|ERROR: libFuzzer' "$log" \
            | cut -d: -f1 | { read -r n && tail -n +"$n" "$log" | head -n 60; } >&2
        ls -1t "$out/artifacts/$t-"* 2>/dev/null | head -n1 | sed 's/^/fuzz: artifact: /' >&2
    fi
    summary+=("$(printf 'fuzz: %-13s execs %-10s corpus %5s files %9s bytes  cov %-5s %s' \
        "$t" "${execs:-?}" "$files" "$bytes" "${cov:-?}" "$status")")
done

echo "fuzz: summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (artifacts in $out/artifacts/, logs in $out/logs/)" >&2
    exit 1
fi
