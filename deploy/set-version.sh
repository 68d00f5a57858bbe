#!/usr/bin/env bash
# Sets the release version: writes VERSION (the one source: pyproject and amoroute.__version__
# read it) and the copies tools cannot read from it, the image tag and version label in
# deploy/k8s/base/kustomization.yaml and the Dockerfile's ARG VERSION default.
#
#   deploy/set-version.sh 0.2.0
#
# Then `.venv/bin/python -m pytest -q tests/deploy -k version` checks that they agree.
set -euo pipefail

new=${1:-}
if ! [[ "$new" =~ ^[0-9]+\.[0-9]+\.[0-9]+([.+-][0-9A-Za-z.+-]+)?$ ]]; then
  echo "usage: deploy/set-version.sh X.Y.Z (got '${new}')" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
old=$(tr -d '[:space:]' <"$root/VERSION")

printf '%s\n' "$new" >"$root/VERSION"
sed -i -E \
  -e "s|^(      app\.kubernetes\.io/version: )\"[^\"]*\"|\1\"$new\"|" \
  -e "s|^(    newTag: )\"[^\"]*\"|\1\"$new\"|" \
  "$root/deploy/k8s/base/kustomization.yaml"
sed -i -E "s|^ARG VERSION=.*$|ARG VERSION=$new|" "$root/Dockerfile"
echo "version $old -> $new: VERSION, deploy/k8s/base/kustomization.yaml, Dockerfile"
