#!/usr/bin/env bash
# Install the Debian packages Sitewatch runs on, only those that are missing, so a warm machine
# pays nothing. apt-get update runs once, and only when something must be installed.
# With --test, also what only the tests need: Debian's chromium (driven by Playwright with its
# executable path: no browser is ever downloaded) and a CJK font for the zh-CN pages.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-}" = "--test" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  fc-list ':lang=zh-cn' 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
# Debian starts packaged servers as system services; Sitewatch runs its own private instances.
for svc in mosquitto postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl stop "$svc" || true
  fi
done
