#!/usr/bin/env bash
# Regenerates the committed Swift (Sources/ExecProtocol/Generated) and Python (clients/python/execd_client/gen)
# code from Protos/*.proto. Needs Debian's protobuf-compiler; builds protoc-gen-swift from the resolved
# swift-protobuf checkout (about 20 s the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
swift package resolve >/dev/null
plugin_dir=.build/checkouts/swift-protobuf
swift build -c release --package-path "$plugin_dir" --scratch-path .build-protoc --product protoc-gen-swift >/dev/null
plugin=$(swift build -c release --package-path "$plugin_dir" --scratch-path .build-protoc --show-bin-path)/protoc-gen-swift

swift_out=Sources/ExecProtocol/Generated
py_out=clients/python/execd_client/gen
mkdir -p "$swift_out" "$py_out"
rm -f "$swift_out"/*.pb.swift "$py_out"/*_pb2.py
protoc --plugin=protoc-gen-swift="$plugin" -I Protos \
    --swift_out="$swift_out" --swift_opt=Visibility=Public \
    --python_out="$py_out" \
    Protos/*.proto
# Python's generated modules import each other by bare name; make them package-relative.
sed -i -E 's/^import (\w+_pb2) as/from . import \1 as/' "$py_out"/*_pb2.py
touch "$py_out/__init__.py"
echo "generated: $(ls "$swift_out" "$py_out" | tr '\n' ' ')"
