#!/usr/bin/env bash
# Runs the three nodes of a multi-process example in this one terminal, for
# those who would rather not open three. Each line starts with its node.
#
#   examples/run.sh lock          # or hello, election, config, registry
#   examples/run.sh lock -data /tmp/coord-lock   # extra flags go to every node
#                                 # (-data DIR becomes DIR/node1, DIR/node2, ...)
#
# It prints each node's process id: `kill -9 PID` in another terminal crashes
# that node (try it on the leader of examples/election). Ctrl-C stops them all.
# The nodes gossip on 127.0.0.1:7001-7003; set PORT=N to use N..N+2 instead, or
# SEEDS=host:port,host:port,host:port for any three addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-}
if [ -z "$name" ] || [ ! -d "examples/$name" ]; then
  echo "usage: examples/run.sh hello|lock|election|config|registry [flags for every node]" >&2
  exit 2
fi
shift

# -data DIR: one directory per node.
args=() data=""
while [ $# -gt 0 ]; do
  case "$1" in
    -data|--data) data=$2; shift 2 ;;
    -data=*|--data=*) data=${1#*=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/$name" "./examples/$name"

port=${PORT:-7001}
seeds=${SEEDS:-"127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"}
pids=()
for id in 1 2 3; do
  extra=()
  if [ -n "$data" ]; then extra=(-data "$data/node$id"); fi
  "$bin/$name" -id "$id" -seeds "$seeds" ${extra[@]+"${extra[@]}"} ${args[@]+"${args[@]}"} &
  pids+=($!)
  echo "run.sh: node $id is process $!"
done

# Ctrl-C reaches every node through the terminal; a TERM to this script is
# passed on. Then wait for all three to finish closing.
trap 'kill -INT "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for i in 0 1 2; do
  pid=${pids[$i]}
  while :; do
    rc=0
    wait "$pid" || rc=$?
    # A signal to this script interrupts wait (status > 128): wait again.
    if [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  if [ "$rc" -ne 0 ]; then
    echo "run.sh: node $((i + 1)) exited with status $rc"
    status=$rc
  fi
done
exit "$status"
