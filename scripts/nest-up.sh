#!/usr/bin/env bash
# Brings Nest up on this machine with the embedded defaults: SQLite in
# /var/lib/nest, dev auth (one static token), the `local` instance driver
# (each instance is a network namespace with its own Docker engine and
# agent), and the relay inside the service. Installs Debian's Docker engine
# and the other tools the driver uses if they are missing, builds Nest,
# starts nest-service in the background, uploads a small demo image, and
# writes $STATE_DIR/nestrc: source it and `osc` (installed beside it) and
# the plain docker CLI (through Nest's Docker endpoint) work with no more
# set-up. The local instances are reachable from this machine
# on the network named `pub`, so `--port pub:222:22` works as in the
# proposal.
#
#   scripts/nest-up.sh          # as root: start (or say it is running)
#   scripts/nest-up.sh stop     # stop the service and delete instances
#
# Environment: NEST_STATE_DIR (default /var/lib/nest), NEST_API_PORT
# (default 9517), NEST_DOCKER_PORT (default 2376), CARGO_TARGET_DIR
# (default ~/.cache/nest-target).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR="${NEST_STATE_DIR:-/var/lib/nest}"
API_PORT="${NEST_API_PORT:-9517}"
DOCKER_PORT="${NEST_DOCKER_PORT:-2376}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nest-target}"
BIN="$CARGO_TARGET_DIR/release"
CONFIG="$STATE_DIR/service.toml"
PIDFILE="$STATE_DIR/service.pid"
LOG="$STATE_DIR/service.log"
RC="$STATE_DIR/nestrc"

say() { printf '%s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<'MSG'
nest-up needs root. The `local` instance driver turns this machine into the
"cloud": for each instance it creates a network namespace attached to a host
bridge, starts a Docker engine inside it, and runs the agent in a private
mount namespace. Creating namespaces, bridges and mounts, and running dockerd,
all need root; so does installing Debian's docker.io when it is missing.

Run it again as root: log in as root, or `su -c scripts/nest-up.sh`
(or `sudo scripts/nest-up.sh` where sudo is installed).
MSG
  exit 1
fi

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  if running; then
    say "stopping nest-service (pid $(cat "$PIDFILE"))"
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 1 50); do running || break; sleep 0.2; done
  fi
  rm -f "$PIDFILE"
  # Instances outlive the service by design; `stop` removes them too.
  "$BIN/nest-service" --config "$CONFIG" delete-instances
  say "stopped; state (database, CA, images) kept in $STATE_DIR"
  exit 0
fi

# 1. What the local driver needs from the system, and docker-compose for
# the Docker endpoint's users.
packages=(docker.io docker-compose busybox-static iproute2 util-linux tar curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! docker version >/dev/null 2>&1; then
  say "starting the host Docker engine (dockerd --storage-driver=vfs)"
  mkdir -p "$STATE_DIR"
  nohup dockerd --storage-driver=vfs >"$STATE_DIR/host-dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || { say "dockerd did not start; see $STATE_DIR/host-dockerd.log"; exit 1; }
fi

# 2. Build.
say "building Nest (release; the first build takes several minutes)"
cargo build --release --locked --bins -p nest-service -p nest-agent -p nest-cli >&2

# 3. Configuration, made once: a random dev token.
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"
if [ ! -f "$CONFIG" ]; then
  TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat >"$CONFIG" <<EOF
# nest-service configuration written by scripts/nest-up.sh.
# DEV AUTH: the static token below is accepted as user "demo" in project
# "demo". For production, use [auth] mode = "keystone" (docs/operator-guide.md).
state_dir = "$STATE_DIR"

[api]
listen = "127.0.0.1:$API_PORT"

[relay]
listen = "0.0.0.0:7443"

[auth]
mode = "dev"
tokens = [
  { token = "$TOKEN", user_id = "demo", project_id = "demo", roles = ["member"] },
]

[docker]
# The Docker Engine API endpoint (docs/docker.md); nestrc sets DOCKER_*.
enabled = true
listen = "127.0.0.1:$DOCKER_PORT"
# Long enough for a development machine; nest-up issues a fresh one each run.
certificate_lifetime = "30d"

[driver]
kind = "local"
agent_binary = "$BIN/nest-agent"
# The network name published ports use: --port pub:222:22.
network_name = "pub"
EOF
  chmod 0600 "$CONFIG"
elif ! grep -q '^network_name' "$CONFIG"; then
  # Configs written before osc: name the network as the proposal does.
  sed -i 's/^kind = "local"$/kind = "local"\nnetwork_name = "pub"/' "$CONFIG"
fi
if ! grep -q '^\[docker\]' "$CONFIG"; then
  # Configs written before the Docker endpoint: enable it.
  printf '\n[docker]\nenabled = true\nlisten = "127.0.0.1:%s"\ncertificate_lifetime = "30d"\n' "$DOCKER_PORT" >>"$CONFIG"
fi
# osc beside the environment file, on the PATH that nestrc sets.
install -D -m 0755 "$BIN/osc" "$STATE_DIR/bin/osc"
TOKEN="$(sed -n 's/.*token = "\([0-9a-f]*\)".*/\1/p' "$CONFIG" | head -n1)"
URL="http://127.0.0.1:$API_PORT"

# 4. Start.
if running; then
  say "nest-service is already running (pid $(cat "$PIDFILE"))"
else
  say "starting nest-service (log: $LOG)"
  nohup "$BIN/nest-service" --config "$CONFIG" >"$STATE_DIR/service.out" 2>"$LOG" &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    running || { say "nest-service exited; last lines of $LOG:"; tail -n 20 "$LOG" >&2; exit 1; }
    sleep 0.2
  done
  curl -fsS "$URL/healthz" >/dev/null || { say "nest-service does not answer; see $LOG"; exit 1; }
fi

# 5. A demo image (no registry is needed): busybox-static as a rootfs.
IMAGE_FILE="$STATE_DIR/demo-image"
if [ ! -s "$IMAGE_FILE" ]; then
  root="$(mktemp -d)"
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh echo cat ls sleep httpd nc ps top env hostname id; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -cf "$root.tar" .
  curl -fsS -X POST -H "X-Auth-Token: $TOKEN" --data-binary @"$root.tar" \
    "$URL/v1/nest/images?name=busybox" | sed -n 's/.*"uuid":"\([^"]*\)".*/\1/p' >"$IMAGE_FILE"
  rm -rf "$root" "$root.tar"
fi
IMAGE="$(cat "$IMAGE_FILE")"

# 6. A client certificate of the demo user for the Docker endpoint (the
# key stays in $STATE_DIR/docker), as `osc docker-env` makes it.
DOCKER_ENV="$(NEST_URL="$URL" NEST_TOKEN="$TOKEN" NEST_PROJECT_ID=demo \
  "$STATE_DIR/bin/osc" docker-env --dir "$STATE_DIR/docker" | grep '^export ')"

# docker-compose and docker-py (Python requests) verify the endpoint with
# REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE instead of DOCKER_CERT_PATH/ca.pem
# when either is set: give them a bundle that holds the system's CAs and
# Nest's, which nestrc uses only where one of them was set.
BUNDLE="$STATE_DIR/docker/ca-bundle.pem"
SYSTEM_BUNDLE=/etc/ssl/certs/ca-certificates.crt
{ [ -r "$SYSTEM_BUNDLE" ] && cat "$SYSTEM_BUNDLE"; cat "$STATE_DIR/docker/ca.pem"; } >"$BUNDLE"

cat >"$RC" <<EOF
# Source this file: . $RC
# osc reads NEST_URL and NEST_TOKEN (dev auth: user demo, project demo).
export NEST_URL=$URL
export NEST_TOKEN=$TOKEN
export NEST_PROJECT_ID=demo
export NEST_DEMO_IMAGE=$IMAGE
# The docker CLI, through Nest's Docker endpoint (demo user and project).
$DOCKER_ENV
if [ -n "\${REQUESTS_CA_BUNDLE:-}\${CURL_CA_BUNDLE:-}" ]; then export REQUESTS_CA_BUNDLE=$BUNDLE; fi
case ":\$PATH:" in *":$STATE_DIR/bin:"*) ;; *) export PATH="$STATE_DIR/bin:\$PATH" ;; esac
EOF

cat <<EOF

Nest is up.
  API:        $URL   (Zun-compatible, microversions 1.1-1.40)
  token:      $TOKEN   (dev auth: user demo, project demo)
  demo image: $IMAGE   (busybox; docker run busybox ... runs it)
  Docker:     tcp://127.0.0.1:$DOCKER_PORT   (TLS; client certificate in $STATE_DIR/docker)

Environment:  . $RC

Try it:
  . $RC
  osc container-create --port pub:8080:8080 --daemon --wait --memory 64M \\
    --image \$NEST_DEMO_IMAGE --cmd "httpd -f -p 8080"
  osc container-list
  docker run -d -p 8081:8081 busybox httpd -f -p 8081
  docker ps
  docker-compose up -d     # in a directory with a docker-compose.yml

Stop:   scripts/nest-up.sh stop
EOF
