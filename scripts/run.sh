#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root), builds execd in release mode and runs it in the foreground on
# /run/execd/execd.sock (or $EXECD_SOCKET). Extra arguments go to execd (see `execd --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
swift build -c release --product execd
swift build -c release --product execctl
echo "run.sh: execctl is at $(swift build -c release --show-bin-path)/execctl"
exec "$(swift build -c release --show-bin-path)/execd" "$@"
