#!/usr/bin/env bash
# Builds in Release and runs the serving and learner benchmarks on full Fashion-MNIST (Debian package
# dataset-fashion-mnist). Each comparison runs side by side in one run and is printed as a ratio.
# Usage: bench/run.sh [--seconds S] [--output FILE] [--only serving|swaps|learner|learner-soak|reverts]
#   --output defaults to bench/results/benchmarks.md; --only runs one section (default: serving and learner).
#   swaps is the hot-swap part of serving (p99 during swaps, RSS over 1,000 swaps) on its own.
#   learner-soak (learner memory over about 380 rounds, several minutes) runs only when --only names it, and so does
#   reverts (RSS over 100 trainer reverts to the live version, with and without malloc_trim, about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    sudo_prefix=""
    if [ "$(id -u)" != 0 ]; then sudo_prefix="sudo"; fi
    $sudo_prefix apt-get update -qq
    $sudo_prefix apt-get install -y -qq dataset-fashion-mnist
fi

dotnet build bench/ContinualServe.Benchmarks -c Release -nologo -v quiet
exec dotnet bench/ContinualServe.Benchmarks/bin/Release/net10.0/linux-x64/ContinualServe.Benchmarks.dll "$@"
