#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds release, starts a private execd, runs `execctl bench` for python and javascript
# at concurrency 1, 2 and 4 with the bwrap cold-start baseline in the same run, and writes the results (JSON lines and
# a markdown table, plus execd's idle and after-run RSS) to BENCHMARKS.md (or the file given with --out).
#
#   ./scripts/bench.sh [--duration 10s] [--out BENCHMARKS.md]
#
# Needs root (execd does), /usr/bin/bwrap, python3 and node. Other load on the machine skews the figures: the
# report records the load average before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

duration=10s
out=BENCHMARKS.md
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "bench.sh: unknown argument $1 (use --duration D, --out FILE)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then echo "bench.sh: run as root (execd needs it)" >&2; exit 1; fi
[ -x /usr/bin/bwrap ] || { echo "bench.sh: /usr/bin/bwrap is missing (apt-get install bubblewrap)" >&2; exit 1; }

socket=/tmp/execd-bench.sock
host_id_base=940000
work="$(mktemp -d /tmp/execd-bench.XXXXXX)"
results="$work/results.jsonl"
execd_pid=

stop_execd() {
    if [ -n "$execd_pid" ] && kill -0 "$execd_pid" 2>/dev/null; then
        kill -TERM "$execd_pid"
        wait "$execd_pid" 2>/dev/null || true
    fi
    execd_pid=
}
trap stop_execd EXIT

rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

echo "bench.sh: building release" >&2
swift build -c release --product execd >&2
swift build -c release --product execctl >&2
bin="$(swift build -c release --show-bin-path)"

# NODE_EXTRA_CA_CERTS is set on some machines and costs node ~40 ms per start; execd does not pass its environment
# to sandboxes anyway, and the bwrap baseline uses --clearenv, so this only keeps the daemon's own environment clean.
start_execd() {
    rm -f "$socket"
    env -u NODE_EXTRA_CA_CERTS "$bin/execd" --socket "$socket" --host-id-base "$host_id_base" --cgroup-subtree execd-bench 2>>"$work/execd.log" &
    execd_pid=$!
    for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
    [ -S "$socket" ] || { echo "bench.sh: execd did not create $socket; its log:" >&2; cat "$work/execd.log" >&2; exit 1; }
    sleep 1
}
start_execd
idle_rss=$(rss_kib "$execd_pid" VmRSS)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
restarts=0

# One measurement. If execd was stopped meanwhile (on a shared machine something else may signal it: the line then
# shows shutting_down or connection_closed errors, or execd is gone), the line is dropped, execd restarted and the
# measurement repeated, at most twice.
bench() {
    for _ in 1 2 3; do
        echo "bench.sh: execctl bench $*" >&2
        local status=0
        "$bin/execctl" bench --socket "$socket" --duration "$duration" --json "$@" >"$work/line.json" || status=$?
        if kill -0 "$execd_pid" 2>/dev/null && ! grep -q '"server_shutting_down"\|"connection_closed"' "$work/line.json"
        then
            [ "$status" = 0 ] || { echo "bench.sh: execctl bench failed (exit $status)" >&2; exit 1; }
            cat "$work/line.json" >>"$results"
            return
        fi
        echo "bench.sh: execd stopped during the measurement (log: $work/execd.log); restarting it" >&2
        stop_execd
        restarts=$((restarts + 1))
        start_execd
    done
    echo "bench.sh: execd keeps stopping; giving up" >&2
    exit 1
}
commands=()
for lang in python javascript; do
    for concurrency in 1 2 4; do
        bench --lang "$lang" --concurrency "$concurrency" --baseline bwrap
        commands+=("execctl bench --socket $socket --duration $duration --json --lang $lang --concurrency $concurrency --baseline bwrap")
    done
done
# One connection per worker or one shared by all: alternated three times, so that drift in the machine's load hits
# both alike.
for _ in 1 2 3; do
    for connections in per-worker shared; do bench --lang python --concurrency 4 --connections "$connections"; done
done
commands+=("execctl bench --socket $socket --duration $duration --json --lang python --concurrency 4 --connections per-worker|shared  # 3 times each, alternating")

after_rss=$(rss_kib "$execd_pid" VmRSS)
peak_rss=$(rss_kib "$execd_pid" VmHWM)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_execd

export BENCH_RESULTS="$results" BENCH_OUT="$out" BENCH_DURATION="$duration" BENCH_IDLE_RSS="$idle_rss" \
    BENCH_AFTER_RSS="$after_rss" BENCH_PEAK_RSS="$peak_rss" BENCH_LOAD_BEFORE="$load_before" \
    BENCH_LOAD_AFTER="$load_after" BENCH_RESTARTS="$restarts" BENCH_COMMANDS="$(printf '%s\n' "${commands[@]}")" \
    BENCH_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" BENCH_NPROC="$(nproc)" BENCH_KERNEL="$(uname -r)" \
    BENCH_CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    BENCH_MEM="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
    BENCH_SWIFT="$(swift --version 2>/dev/null | head -1)" \
    BENCH_COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo '+local changes')" \
    BENCH_CGROUPS="$(grep -o 'cgroups=v[12]' "$work/execd.log" | head -1 | cut -d= -f2)"
python3 - <<'PY'
import json, os

env = os.environ
rows = [json.loads(line) for line in open(env["BENCH_RESULTS"]) if line.strip()]
paired = [r for r in rows if "baseline" in r]
shared = [r for r in rows if r.get("connections") == "shared"]

def pct(p):
    return " / ".join(f"{p[k]:.1f}" for k in ("p50", "p90", "p99", "max")) if p else "–"

def p50(p):
    return f"{p['p50']:.1f}" if p else "–"

def errs(r):
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["errors_by_kind"].items()))
    return f"{r['errors']} ({kinds})" if kinds else str(r["errors"])

table = [
    "| lang | conc. | execd runs/s | bwrap runs/s | execd/bwrap | execd latency p50 / p90 / p99 / max (ms) "
    "| bwrap latency p50 / p90 / p99 / max (ms) | execd server wall p50 (ms) | latency − server wall, p50 (ms) "
    "| execd cpu p50 (ms) | errors execd / bwrap |",
    "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|",
]
for r in paired:
    b, lat, wall = r["baseline"], r.get("latency_ms"), r.get("server_wall_ms")
    gap = f"{lat['p50'] - wall['p50']:.1f}" if lat and wall else "–"
    table.append(
        f"| {r['lang']} | {r['concurrency']} | {r['runs_per_sec']:.1f} | {b['runs_per_sec']:.1f} "
        f"| {b['throughput_ratio']:.2f} | {pct(lat)} | {pct(b.get('latency_ms'))} | {p50(wall)} | {gap} "
        f"| {p50(r.get('cpu_ms'))} | {errs(r)} / {errs(b)} |")
table = "\n".join(table)
ratios = [r["baseline"]["throughput_ratio"] for r in paired]
gaps = [f"{r['latency_ms']['p50'] - r['server_wall_ms']['p50']:.1f} ms ({r['lang']})" for r in paired
        if r["concurrency"] == 1 and r.get("latency_ms") and r.get("server_wall_ms")]
gaps = (f" At concurrency 1, where nothing queues, execd adds {' and '.join(gaps)} at p50 around the program's own "
        f"wall time.") if gaps else ""

connections = "(not measured)"
alone = [r for r in rows if "baseline" not in r]
modes = {m: [r for r in alone if r.get("connections") == m] for m in ("per-worker", "shared")}
if modes["per-worker"] and modes["shared"]:
    median = lambda xs: sorted(xs)[len(xs) // 2]
    lines = [f"| {alone[0]['lang']}, {alone[0]['concurrency']} workers | runs/s (each measurement, in order) "
             f"| median runs/s | median latency p50 / p99 (ms) | errors |", "|---|---|---:|---|---:|"]
    for mode, label in (("per-worker", "one connection per worker"), ("shared", "one shared connection")):
        rs = modes[mode]
        lines.append(
            f"| {label} | {', '.join('%.1f' % r['runs_per_sec'] for r in rs)} "
            f"| {median([r['runs_per_sec'] for r in rs]):.1f} "
            f"| {median([r['latency_ms']['p50'] for r in rs]):.1f} / {median([r['latency_ms']['p99'] for r in rs]):.1f} "
            f"| {sum(r['errors'] for r in rs)} |")
    a = median([r["runs_per_sec"] for r in modes["per-worker"]])
    b = median([r["runs_per_sec"] for r in modes["shared"]])
    connections = "\n".join(lines) + (
        f"\n\nMedian throughput, shared vs per-worker: {(b / a - 1) * 100:+.1f}% (measurements alternated; compare "
        f"with the spread within each row before reading much into it)." if a > 0 else "")

restarts = int(env["BENCH_RESTARTS"])
restarts = (f" execd was stopped from outside {restarts} time(s) during the session and restarted; the interrupted "
            f"measurements were repeated, and the after-run RSS is that of the last instance.") if restarts else ""
mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
commands = "\n".join(env["BENCH_COMMANDS"].strip().splitlines())
doc = f"""# Benchmarks

Generated by `./scripts/bench.sh` (regenerate with that one command, as root; `--duration D` to change the
measuring time). execd serves Python runs from its pool of warm zygotes (a fork per run, its own cgroup, fresh
/tmp, privileges dropped in the child; see docs/pool.md) and JavaScript runs from pre-started single-use node
workers refilled in the background. The bwrap baseline starts a fresh sandbox and interpreter per run.

## Setup

- Date: {env["BENCH_DATE"]}; execd commit `{env["BENCH_COMMIT"]}`, release build ({env["BENCH_SWIFT"]})
- Machine: {env["BENCH_NPROC"]} CPUs ({env["BENCH_CPU"]}), {env["BENCH_MEM"]}, kernel {env["BENCH_KERNEL"]}, cgroup {env["BENCH_CGROUPS"] or "?"}
- Load average (1/5/15 min) before the runs: {env["BENCH_LOAD_BEFORE"]}; after: {env["BENCH_LOAD_AFTER"]}
- execd: `execd --socket /tmp/execd-bench.sock --host-id-base 940000 --cgroup-subtree execd-bench` (defaults
  otherwise: at most max(4, 2 × CPUs) runs at once and one per CPU computing, twice that and two more warm Python slots, max(2, CPUs) JavaScript workers)
- Program: `print(1)` (python) and `console.log(1)` (javascript), {env["BENCH_DURATION"]} per measurement after a
  warm-up of one run per worker; closed loop (each worker sends its next run when the last one returned)

Commands (the bwrap baseline runs right after execd in the same command, same program, concurrency and duration):

```sh
{commands}
```

## Results

Latency is client-side (request sent → result received; for bwrap, spawn → reaped), successful runs only.
"Server wall" is the program's wall time as execd measured it next to the sandbox; latency − server wall is
what execd adds around the program: the socket, queueing, and its per-run setup and teardown (uid, cgroup,
namespaces, mounts, reaping).

{table}

execd/bwrap throughput: {min(ratios):.2f}–{max(ratios):.2f}×.{gaps}

execd's memory: idle RSS {mib(env["BENCH_IDLE_RSS"])} before the runs, {mib(env["BENCH_AFTER_RSS"])} after them (peak {mib(env["BENCH_PEAK_RSS"])}).{restarts}

### One connection per worker, or one shared

{connections}

`execctl bench` uses one connection per worker by default (`--connections per-worker`); `--connections shared`
multiplexes every worker's requests over one connection (by request id).

## Reading these numbers

- Every execd run has its own cgroup (limits and accounting), seccomp filter and rlimits, its output captured
  through pipes and a round trip over the socket; the bwrap baseline has none of those (output to /dev/null, no
  cgroup, no limits). The Python pool takes the namespaces, the mounts and the interpreter's start out of a run's
  path (a fork per run). JavaScript's single-use workers take node's start out of a run's latency, not out of the
  machine's CPU: each run still costs one node start, so JavaScript throughput stays that of cold starts (see
  docs/pool.md). A run that finds no warm slot within 20 ms runs in a one-shot sandbox (the latency maxima).
- execd writes the program to `/tmp/main.py` / `/tmp/main.js` in the sandbox; the baseline passes it with
  `python3 -I -B -c` / `node -e`. Both use the same environment (`PATH`, `HOME`, `TMPDIR`, `LANG`, `LC_ALL`, no
  `NODE_EXTRA_CA_CERTS`).
- Throughput is bounded by the CPUs: with {env["BENCH_NPROC"]} CPUs, concurrency beyond {env["BENCH_NPROC"]} mostly adds queueing latency.
- Errors are counted, never hidden; an `internal_error` is execd's fault (the script prints where it kept execd's
  log).
- This machine is shared: other builds and tests may have run during the measurement (see the load average above),
  so differences of a few percent are noise.

bwrap baseline command per run:

```sh
bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/lib /lib \\
  --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc \\
  --dev /dev --tmpfs /tmp --chdir /tmp --clearenv --setenv PATH /usr/bin:/bin --setenv HOME /tmp \\
  --setenv TMPDIR /tmp --setenv LANG C.UTF-8 --setenv LC_ALL C.UTF-8 /usr/bin/python3 -I -B -c 'print(1)'
```

## Raw results (`--json`, one line per command)

```json
{chr(10).join(json.dumps(r, sort_keys=True) for r in rows)}
```
"""
open(env["BENCH_OUT"], "w").write(doc)
print(table)
print(f"execd/bwrap throughput: {min(ratios):.2f}-{max(ratios):.2f}x; execd RSS idle {mib(env['BENCH_IDLE_RSS'])}, "
      f"after {mib(env['BENCH_AFTER_RSS'])}, peak {mib(env['BENCH_PEAK_RSS'])}")
PY
echo "bench.sh: wrote $out; JSON lines in $results" >&2
