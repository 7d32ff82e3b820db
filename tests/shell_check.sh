# Sourced by the shell tests (tests/test_*.sh): named checks and a final
# summary line in Check's format, so scripts/run_tests.sh counts them with the
# C suites. Each check runs a command; its output is shown only on failure.
_checks=0 _failures=0
check() {
    local name=$1 out
    shift
    _checks=$((_checks + 1))
    if out=$("$@" 2>&1); then
        echo "ok   $name"
    else
        _failures=$((_failures + 1))
        echo "FAIL $name"
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/     /'
    fi
}
check_summary() {
    local pct=100
    [ "$_checks" -gt 0 ] && pct=$(((_checks - _failures) * 100 / _checks))
    echo "$pct%: Checks: $_checks, Failures: $_failures, Errors: 0"
    [ "$_failures" -eq 0 ]
}
