#!/usr/bin/env bash
# Installs what Orchestrator needs on Debian/Ubuntu when it is missing: redis-server (tests, cluster mode) and
# Debian's Fashion-MNIST package (the demo's data). Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

# Extra packages can be named (test.sh adds docker-compose, to validate docker-compose.yml, and chromium, for the
# browser test of the silo's pages, and binutils' readelf, to check the published TorchSharp library).
ensure_packages() {
  local need=()
  # Each argument is a command that is also its package's name, or COMMAND:PACKAGE.
  for extra in "$@"; do command -v "${extra%%:*}" >/dev/null 2>&1 || need+=("${extra#*:}"); done
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
      sudo=sudo
    fi
    echo "Installing ${need[*]} ..."
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "error: the .NET 10 SDK (dotnet) is not installed; install it from Microsoft's packages, then rerun" >&2
    exit 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_packages; fi
