#!/bin/sh
# Install the Debian packages libicl needs to build, test and plot.
# As root: installs what is missing with apt-get. Otherwise: names what is
# missing and how to install it, and fails.
set -eu
# clang and its runtime libraries build the libFuzzer targets that `make check` replays;
# numpy and pytest test the Python package; Open MPI runs the data-parallel tests.
need="build-essential pkg-config libopenblas-openmp-dev check libcjson-dev gnuplot-nox clang libclang-rt-14-dev
      python3-numpy python3-pytest openmpi-bin libopenmpi-dev"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "setup: missing Debian packages:$missing" >&2
    echo "setup: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
