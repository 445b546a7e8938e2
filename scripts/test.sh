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
# test process) are removed here. rmdir removes only empty groups, and nothing else is named execd-test-*.
find /sys/fs/cgroup -depth -type d -path '*/execd-test-*' -exec rmdir {} + 2>/dev/null || true

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
