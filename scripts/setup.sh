#!/usr/bin/env bash
# Installs what execd needs on a Debian 12 machine (run as root). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (it installs packages)" >&2; exit 1; fi
need=(libseccomp-dev libcap-dev libsystemd-dev pkg-config protobuf-compiler python3 python3-venv bubblewrap)
command -v node >/dev/null || need+=(nodejs)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || [ -x /opt/swift/usr/bin/swift ] || {
    echo "setup.sh: Swift 6 is required (https://www.swift.org/install/linux/); put swift on PATH" >&2; exit 1; }
for bin in /usr/bin/python3 /usr/bin/node; do
    [ -x "$bin" ] || { echo "setup.sh: $bin is missing; sandboxes use absolute interpreter paths" >&2; exit 1; }
done
# User namespaces must be allowed (Debian 12 allows them by default).
if [ "$(cat /proc/sys/user/max_user_namespaces)" = 0 ]; then
    echo "setup.sh: user namespaces are disabled (sysctl user.max_user_namespaces=0)" >&2; exit 1
fi
