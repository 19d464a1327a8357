#!/usr/bin/env bash
# The README's test command (and CI's): installs what is missing, builds everything, runs the whole test suite
# (unit, TestCluster grain tests, and real-process tests with redis-server, silos and workers) and ends with
# the line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages docker-compose chromium readelf:binutils
results=artifacts/test-results
rm -rf "$results"
echo "Building (Release) ..."
dotnet build Orchestrator.sln -c Release -v quiet -nologo -clp:ErrorsOnly
status=0
dotnet test Orchestrator.sln -c Release --no-build --nologo \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" \
  --results-directory "$results" "$@" || status=$?
trx=$(find "$results" -name '*.trx' | head -n 1)
if [ -z "$trx" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
counters=$(grep -o '<Counters [^>]*>' "$trx")
count() { echo "$counters" | grep -o "$1=\"[0-9]*\"" | grep -o '[0-9]*'; }
passed=$(count passed); failed=$(count failed); total=$(count total); executed=$(count executed)
skipped=$((total - executed))
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
