#!/usr/bin/env bash
# Runs Nest's whole test suite on a fresh Debian machine: installs what the
# tests need (Docker engine, docker-compose, busybox-static for the test
# image, cloud-init for user-data validation), starts a Docker engine if none answers, then
# runs fmt, clippy and every test. Needs root (apt, dockerd, namespaces).
#
# Environment:
#   CARGO_TARGET_DIR  build directory (default: ~/.cache/nest-target, outside
#                     the clone so rebuilds stay fast)
#   NEST_SKIP_INSTALL=1  skip apt (packages already present)
#
# PostgreSQL comes from scripts/postgres-for-tests.sh (Debian's package,
# started if needed); Keystone from ../shared/openstack-lab/up.sh (about 3
# minutes the first time); python-zunclient, python-openstackclient and
# schemathesis (the API fuzz run, tests/tests/api_fuzz.rs, 2 minutes by
# default: NEST_FUZZ_SECONDS) from PyPI into virtualenvs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh needs root: it installs packages and runs a Docker engine." >&2
  echo "Run it as root (CI does), or with sudo -E." >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nest-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

packages=(docker.io docker-compose busybox-static cloud-init python3-yaml iproute2 tar openssh-server openssh-client tmux)
if [ "${NEST_SKIP_INSTALL:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

started_dockerd=""
cleanup() {
  if [ -n "$started_dockerd" ]; then
    log "stopping the Docker engine this script started"
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd (--storage-driver=vfs)"
  dockerd --storage-driver=vfs >"${TMPDIR:-/tmp}/nest-test-dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || {
    echo "dockerd did not come up; its log:" >&2
    tail -n 50 "${TMPDIR:-/tmp}/nest-test-dockerd.log" >&2
    exit 1
  }
fi

log "PostgreSQL for the database tests"
NEST_TEST_POSTGRES_URL="$(scripts/postgres-for-tests.sh | tail -n1)"
export NEST_TEST_POSTGRES_URL

log "OpenStack lab (Keystone for the auth and zunclient tests)"
LAB="${NEST_OPENSTACK_LAB:-../shared/openstack-lab}"
if [ ! -x "$LAB/up.sh" ]; then
  echo "the OpenStack lab is missing at $LAB (set NEST_OPENSTACK_LAB)" >&2
  exit 1
fi
# A lab that already answers (Keystone, Nova, Neutron, Glance) is used as
# it is: up.sh's cell check (`list_cells | grep -q` under pipefail) fails
# on a machine where the lab was set up before. NEST_LAB_RESTART=1 runs
# up.sh anyway; a failed run is retried once.
lab_log="${TMPDIR:-/tmp}/nest-test-openstack-lab.log"
lab_answers() {
  local port
  for port in 5000 8774 9696 9292; do
    curl -fs -o /dev/null --max-time 5 "http://127.0.0.1:$port/" || return 1
  done
}
if [ "${NEST_LAB_RESTART:-0}" != 1 ] && lab_answers; then
  log "the OpenStack lab is already up; using it"
else
  bash "$LAB/up.sh" >/dev/null 2>"$lab_log" || {
    log "the OpenStack lab failed once; trying again"
    bash "$LAB/up.sh" >/dev/null 2>>"$lab_log"
  } || {
    echo "the OpenStack lab did not come up; see $lab_log" >&2
    exit 1
  }
fi
export OS_AUTH_URL=http://127.0.0.1:5000/v3

log "python-zunclient and python-openstackclient (from PyPI) for the compatibility tests"
ZUN_VENV=/opt/nest-zunclient
if [ ! -x "$ZUN_VENV/bin/zun" ] || [ ! -x "$ZUN_VENV/bin/openstack" ]; then
  [ -x "$ZUN_VENV/bin/pip" ] || python3 -m venv "$ZUN_VENV"
  # The plugin (`openstack appcontainer`) is python-zunclient's; the
  # `openstack` command it plugs into is installed by name, not left to
  # come as a dependency.
  "$ZUN_VENV/bin/pip" install -q python-zunclient python-openstackclient
fi
export NEST_ZUN_BIN="$ZUN_VENV/bin/zun"
export NEST_OPENSTACK_BIN="$ZUN_VENV/bin/openstack"

log "docker-py (from PyPI) for the Docker endpoint's client test"
DOCKER_PY_VENV=/opt/nest-docker-py
if ! "$DOCKER_PY_VENV/bin/python" -c 'import docker' 2>/dev/null; then
  python3 -m venv "$DOCKER_PY_VENV"
  "$DOCKER_PY_VENV/bin/pip" install -q docker
fi
export NEST_DOCKER_PY="$DOCKER_PY_VENV/bin/python"

log "schemathesis (from PyPI) for the API fuzz run"
ST_VENV=/opt/nest-schemathesis
if [ ! -x "$ST_VENV/bin/st" ]; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q schemathesis
fi
export NEST_SCHEMATHESIS_BIN="$ST_VENV/bin/st"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building the binaries the end-to-end tests run"
cargo build --workspace --bins --locked

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast
fi

log "all tests passed"
