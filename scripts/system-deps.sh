#!/usr/bin/env bash
# System packages mlhunt needs beyond Python: Graphviz (`dot`) renders data-flow diagrams;
# PostgreSQL lets the loan scenario's tests run against a real server as well as SQLite.
set -euo pipefail
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
# Debian keeps initdb/pg_ctl off PATH, under /usr/lib/postgresql/<version>/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
# Java 17+ runs Apache Spark for `hunt --engine spark` (local mode in the tests).
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
# Headless Chromium opens the HTML run report in the browser test (tests/test_run_browser.py).
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || command -v google-chrome >/dev/null 2>&1 || need+=(chromium)
# Redis shares `mlhunt guard` state between replicas (tests start a private server).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "error: need ${need[*]} (Debian/Ubuntu: apt-get install ${need[*]}); not root and no sudo" >&2
  exit 1
fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install "${need[@]}"
else
  echo "error: install ${need[*]} with your package manager" >&2
  exit 1
fi
