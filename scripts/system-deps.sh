#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: GDAL's command-line tools (ogrinfo/ogr2ogr
# as independent clients), PostgreSQL + PostGIS, Chromium for the browser tests.
# Installs only what is missing; needs root (as on CI) or does nothing but warn.
set -euo pipefail
PACKAGES=(gdal-bin sqlite3 postgresql-15 postgresql-15-postgis-3 chromium)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "warning: missing Debian packages (${missing[*]}); install them with apt-get as root" >&2
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
