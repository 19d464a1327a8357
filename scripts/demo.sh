#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and trains a Fashion-MNIST MLP on the embedded
# default (a silo and a worker in one process, no Redis), printing its test accuracy. Extra arguments go to
# 'orch demo' (for example --epochs 15).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages
echo "Building (Release) ..."
dotnet build cli/Orchestrator.Cli.csproj -c Release -v quiet -nologo -clp:ErrorsOnly
exec dotnet cli/bin/Release/net10.0/orch.dll demo "$@"
