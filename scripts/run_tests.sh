#!/bin/bash
# Run every test program given, show its output, and finish with one line
# summing Check's counts over all suites: "tests: N passed, M failed".
# A shell test (*.sh) runs under bash and prints the same summary line as
# Check (tests/shell_check.sh). An argument NAME=VALUE sets that environment
# variable for the tests after it (the sanitizer suites' options).
# Exits non-zero if any suite failed or could not run.
set -uo pipefail
passed=0 failed=0 broken=0
for t in "$@"; do
    case $t in
    [A-Za-z_]*=*) export "${t?}"; continue ;;
    esac
    echo "== $t"
    case $t in
    *.sh) out=$(bash "$t" 2>&1) ;;
    *) out=$("$t" 2>&1) ;;
    esac
    rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! $t printed no Check summary (exit $rc)"
        broken=$((broken + 1))
        continue
    fi
    checks=$(printf '%s' "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    fails=$(printf '%s' "$line" | sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/')
    fails=$((fails))
    passed=$((passed + checks - fails))
    failed=$((failed + fails))
    [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ] && broken=$((broken + 1))
done

# The Python package's pytest suite, when the caller names it (make check
# sets PYTEST_DIR and PYTHON): its counts join the totals.
run_pytest() {
    echo "== pytest $PYTEST_DIR"
    out=$("${PYTHON:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider "$PYTEST_DIR" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^=* ?[0-9]+ (passed|failed)|^=* ?no tests ran' | tail -n 1)
    count() { printf '%s' "$line" | grep -oE "[0-9]+ $1" | grep -oE '[0-9]+' || echo 0; }
    if [ -z "$line" ]; then
        echo "!! pytest printed no summary (exit $rc)"
        broken=$((broken + 1))
        return
    fi
    passed=$((passed + $(count passed)))
    failed=$((failed + $(count failed) + $(count error)))
    [ "$rc" -ne 0 ] && [ "$(count failed)" -eq 0 ] && [ "$(count error)" -eq 0 ] && broken=$((broken + 1))
}
[ -n "${PYTEST_DIR:-}" ] && run_pytest

echo "tests: $passed passed, $((failed + broken)) failed"
[ "$failed" -eq 0 ] && [ "$broken" -eq 0 ]
