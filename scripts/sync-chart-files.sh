#!/usr/bin/env bash
# Copies the Grafana dashboard and the Prometheus rules into the Helm chart, which can only read
# files inside its own directory. The deploy tests fail while a copy differs from its original.
set -euo pipefail
cd "$(dirname "$0")/.."

files=deploy/helm/continualserve/files
for original in deploy/grafana/continualserve-dashboard.json deploy/prometheus/continualserve-rules.yaml; do
    if [ -f "$original" ]; then
        cp "$original" "$files/$(basename "$original")"
        echo "copied $original"
    else
        echo "missing $original; kept $files/$(basename "$original")"
    fi
done
