#!/usr/bin/env bash
# Install the Debian packages Sitewatch runs on, only those that are missing, so a warm machine
# pays nothing. apt-get update runs once, and only when something must be installed.
# With --test, also what only the tests need: Debian's chromium (driven by Playwright with its
# executable path: no browser is ever downloaded) and a CJK font for the zh-CN pages.
# With --cluster, also Debian's nats-server: the clustered broker of docs/scaling.md and its test.
set -euo pipefail

test_deps=0
cluster=0
for arg in "$@"; do
  case "$arg" in
    --test) test_deps=1 ;;
    --cluster) cluster=1 ;;
    *) echo "usage: $0 [--test] [--cluster]" >&2; exit 2 ;;
  esac
done

need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "$test_deps" -eq 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  fc-list ':lang=zh-cn' 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
fi
if [ "$cluster" -eq 1 ]; then
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || need+=(nats-server)
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
for svc in mosquitto postgresql nats-server; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl stop "$svc" || true
  fi
done
