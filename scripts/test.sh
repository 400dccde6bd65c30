#!/usr/bin/env bash
# Fresh machine -> install with test extras -> lint, definitions check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
. scripts/debian.sh
# The committee report's test opens the HTML in headless Chromium: Debian's package, since
# browsers cannot be downloaded here.
command -v chromium >/dev/null 2>&1 || debian_install chromium 2>/dev/null
# The UI login's test puts scripts/ui_proxy.sh's nginx in front of a real webserver: Debian's
# package (not on an ordinary user's PATH, hence /usr/sbin).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || debian_install nginx 2>/dev/null
export DAGSTER_HOME="$(mktemp -d)"
cp dagster_home/dagster.yaml "$DAGSTER_HOME/"
.venv/bin/ruff format --check kodomo_assets kodomo_assets_tests scripts
.venv/bin/ruff check kodomo_assets kodomo_assets_tests scripts
.venv/bin/mypy
.venv/bin/dagster definitions validate -m kodomo_assets
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
