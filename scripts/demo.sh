#!/usr/bin/env bash
# Runs `continualserve demo` on the full Fashion-MNIST training set with the embedded Kafka broker.
# Installs the Debian package dataset-fashion-mnist when its IDX files are missing, then restores and
# builds the server in Release. Extra arguments go to the demo (see `continualserve demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

data_directory=/usr/share/datasets/fashion-mnist
if [ ! -f "$data_directory/train-images-idx3-ubyte.gz" ]; then
    sudo_prefix=""
    if [ "$(id -u)" != 0 ]; then sudo_prefix="sudo"; fi
    $sudo_prefix apt-get update -qq
    $sudo_prefix apt-get install -y -qq dataset-fashion-mnist
fi

dotnet build src/Server/ContinualServe.Server.csproj -c Release -nologo -v quiet
exec src/Server/bin/Release/net10.0/linux-x64/continualserve demo --data "$data_directory" "$@"
