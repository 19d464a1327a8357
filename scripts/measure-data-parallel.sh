#!/bin/bash
# Runs one data-parallel job through a real cluster on this machine: redis-server, one silo and N worker
# processes (one cpu slot, one TorchSharp thread each), and prints the result with the per-step time split.
#   bash scripts/measure-data-parallel.sh [RANKS=8] [GRADIENTS=adasum] [STEPS=300]
set -e
RANKS=${1:-8}; GRADIENTS=${2:-adasum}; STEPS=${3:-300}
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
dotnet build Orchestrator.sln -v q >/dev/null
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $PORT --save "" --appendonly no --daemonize yes >/dev/null
trap "redis-cli -p $PORT shutdown nosave >/dev/null 2>&1; kill \$(jobs -p) 2>/dev/null" EXIT
dotnet silo/bin/Debug/net10.0/orch-silo.dll --redis 127.0.0.1:$PORT --silo-port $((PORT+1)) --gateway-port $((PORT+2)) > ${TMPDIR:-/tmp}/dp-silo.log 2>&1 &
sleep 8
for i in $(seq 1 $RANKS); do dotnet worker/bin/Debug/net10.0/orch-worker.dll --redis 127.0.0.1:$PORT --node-id w$i --devices cpu:1 --threads 1 > ${TMPDIR:-/tmp}/dp-w$i.log 2>&1 & done
sleep 10
cat > ${TMPDIR:-/tmp}/dp.yaml <<YAML
name: dp$RANKS
kind: data-parallel
workers: {min: $RANKS, max: $RANKS}
gradients: $GRADIENTS
model: {type: mlp, hidden: [256]}
data: {dataset: fashion-mnist}
train: {steps: $STEPS, batchSize: 32, lr: 0.01, momentum: 0.9}
YAML
dotnet cli/bin/Debug/net10.0/orch.dll --redis 127.0.0.1:$PORT submit ${TMPDIR:-/tmp}/dp.yaml --wait 2>&1 | tail -2
id=$(dotnet cli/bin/Debug/net10.0/orch.dll --redis 127.0.0.1:$PORT jobs | grep -o "dp$RANKS-[a-z0-9]*" | head -1)
dotnet cli/bin/Debug/net10.0/orch.dll --redis 127.0.0.1:$PORT events $id | grep -E "succeeded|formed"
