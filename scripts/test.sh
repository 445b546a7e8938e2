#!/usr/bin/env bash
# Sets up the machine (as root) and runs the whole test suite: the Swift tests (unit tests and end-to-end tests
# with real sandboxes), then the Python client's tests against a real execd started here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
unset NODE_EXTRA_CA_CERTS
./scripts/setup.sh

swift build --build-tests
swift test --skip-build
# The test process's shared daemons end with it, without their graceful shutdown: their cgroups (named after the
# test process) are removed here, once their sandboxes, which die with the test process, are gone (a sweep right
# after it left groups whose processes were not reaped yet). rmdir removes only empty groups, and nothing else is
# named execd-test-*; groups of a test process still running (another run on this machine) are not ours to judge.
leftover_test_groups() {
    find /sys/fs/cgroup -type d -path '*/execd-test-*' | while read -r dir; do
        pid=${dir##*/execd-test-}; pid=${pid%%[!0-9]*}
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && echo "$dir"
    done
}
for _ in $(seq 50); do
    find /sys/fs/cgroup -depth -type d -path '*/execd-test-*' -exec rmdir {} + 2>/dev/null || true
    [ -z "$(leftover_test_groups)" ] && break
    sleep 0.2
done
[ -z "$(leftover_test_groups)" ] || { echo "test.sh: the test daemons left cgroups behind:" >&2; leftover_test_groups >&2; exit 1; }

# The Python client, against a real daemon on a private socket.
venv=.venv-test
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q -r clients/python/requirements-test.txt
sock=$(mktemp -u /tmp/execd-pytest-XXXXXX.sock)
bin=$(swift build --show-bin-path)
"$bin/execd" --socket "$sock" --host-id-base 930000 --cgroup-subtree execd-pytest --log-level warning &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
EXECD_SOCKET="$sock" "$bin/execctl" run --lang python - <<<'print("execctl ok")' | grep -q "execctl ok"
(cd clients/python && EXECD_SOCKET="$sock" "../../$venv/bin/python" -m pytest -q tests)
# A clean shutdown on SIGTERM removes the socket and leaves no sandbox behind.
kill -TERM $daemon
wait $daemon
trap - EXIT
[ ! -e "$sock" ] || { echo "test.sh: execd left its socket behind" >&2; exit 1; }
if [ -d /sys/fs/cgroup/memory ] && find /sys/fs/cgroup -maxdepth 6 -type d -name execd-pytest | grep -q .; then
    echo "test.sh: execd left its cgroup subtree behind (cgroup v1)" >&2; exit 1
fi
echo "test.sh: all suites passed"
