#!/usr/bin/env bash
# Installs the Debian packages ddpmlua needs, only when something is missing.
#   scripts/setup.sh          build + run dependencies
#   scripts/setup.sh test     also the test-only reference (python3-torch), prove, and clang +
#                             libFuzzer for make fuzz
#   scripts/setup.sh data     also the Fashion-MNIST data set
set -eu
want="build-essential pkg-config libluajit-5.1-dev luajit libopenblas-dev libopenblas0-openmp libpng-dev libsqlite3-dev sqlite3 zlib1g-dev libedit-dev libplplot-dev plplot-driver-cairo openmpi-bin libopenmpi-dev"
for extra in "$@"; do
  case "$extra" in
    test) want="$want python3-torch python3-torchvision perl dataset-fashion-mnist chromium strace luarocks clang-14 libclang-rt-14-dev libfuzzer-14-dev" ;;
    data) want="$want dataset-fashion-mnist" ;;
    *) echo "setup.sh: unknown component '$extra' (expected test or data)" >&2; exit 2 ;;
  esac
done
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
