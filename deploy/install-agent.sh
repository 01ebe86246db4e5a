#!/usr/bin/env bash
# Installs the remotegpu agent on a GPU server as a systemd service.
#   sudo bash deploy/install-agent.sh --controller controller.example.com:9090 --join-token-file /root/join-token
#   sudo bash deploy/install-agent.sh --controller controller.example.com:9090 --join-token-file - < /root/join-token
# The join token comes from a file or standard input only (with `-` on a terminal it is asked for,
# not echoed), never from an argument or the environment: other users see those in `ps` and
# /proc, and shells keep them in their history. It is an opaque string, written as it is to
# /etc/remotegpu/agent.env (mode 0600, created so before the token is written) and never printed.
# Optional, from the environment: REMOTEGPU_AGENT_LISTEN, REMOTEGPU_PUBLIC_ADDRESS, REMOTEGPU_GPU_MODE,
# REMOTEGPU_AGENT_METRICS_ADDR (Prometheus metrics; none by default), written to agent.env when it
# is created. REMOTEGPU_CONTROLLER may stand for --controller.
# Run it from a checkout of this repository. Needs: root, systemd, Docker, Node.js 20 with npm,
# and the NVIDIA driver (+ nvidia-container-toolkit or CDI specs for the nvidia/cdi GPU modes).
# Tests: --prefix DIR (or REMOTEGPU_INSTALL_ROOT=DIR) writes every file under DIR and skips what
# needs root or the network: the root and prerequisite checks, the npm build and systemctl.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: sudo bash deploy/install-agent.sh --controller HOST:PORT --join-token-file FILE|- [--prefix DIR]
  --controller HOST:PORT   the controller's gRPC address (or REMOTEGPU_CONTROLLER); replicas:
                           HOST:PORT,HOST:PORT (the agent fails over between them)
  --join-token-file FILE   a file holding the join token on one line; `-` reads standard input
  --prefix DIR             tests: install under DIR, no root, no build, no systemctl
USAGE
}
die() {
  echo "install-agent.sh: $*" >&2
  exit 1
}
refuse_token() {
  die "refusing $1: other users see it (ps, /proc) and shells keep it in their history. Put the token in a file (mode 0600) and pass --join-token-file FILE, or pipe it in: --join-token-file - < FILE"
}

controller=${REMOTEGPU_CONTROLLER:-}
token_file=
root=${REMOTEGPU_INSTALL_ROOT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --controller | --join-token-file | --prefix)
      [ $# -ge 2 ] || die "$1 needs a value (see --help)"
      case "$1" in
        --controller) controller=$2 ;;
        --join-token-file) token_file=$2 ;;
        --prefix) root=$2 ;;
      esac
      shift 2
      ;;
    --controller=*) controller=${1#*=}; shift ;;
    --join-token-file=*) token_file=${1#*=}; shift ;;
    --prefix=*) root=${1#*=}; shift ;;
    --join-token | --join-token=* | --token | --token=*) refuse_token "a join token on the command line" ;;
    -h | --help) usage; exit 0 ;;
    # Never echo an unknown argument whole: it may be the token itself.
    -*) die "unknown option ${1%%=*} (see --help)" ;;
    *) die "unexpected argument (not shown: it may be a secret); the join token goes in a file: --join-token-file FILE (see --help)" ;;
  esac
done

[ -z "${REMOTEGPU_JOIN_TOKEN:-}" ] || refuse_token "REMOTEGPU_JOIN_TOKEN in the environment (unset it; sudo REMOTEGPU_JOIN_TOKEN=... puts the token on a command line)"
[ -n "$controller" ] || die "--controller HOST:PORT is required: the controller's gRPC address (see --help)"
[ -n "$token_file" ] || die "--join-token-file FILE (or - for standard input) is required: the join token the controller printed (see --help)"

# Read the token first, so that a mistake fails before the long build; no other process sees it.
from=$token_file
if [ "$token_file" = - ]; then
  from="standard input"
  if [ -t 0 ]; then
    printf 'join token (input hidden): ' >&2
    IFS= read -rs token || true
    echo >&2
  else
    IFS= read -r -d '' token || true # all of standard input (a pipe, a file or a socket)
  fi
else
  [ -r "$token_file" ] && [ ! -d "$token_file" ] || die "cannot read the join token file $token_file"
  token=$(<"$token_file")
fi
while [[ $token == *$'\n' || $token == *$'\r' ]]; do token=${token%?}; done
[ -n "$token" ] || die "the join token is empty (from $from)"
case "$token" in
  *[[:space:]\"\'\\]*) die "the join token must be one line without spaces, quotes or backslashes (from $from)" ;;
esac

root=${root%/}
if [ -z "$root" ]; then
  [ "$(id -u)" = 0 ] || die "run as root (the agent manages Docker and device nodes)"
  command -v docker >/dev/null || die "Docker is missing: install it first (e.g. apt-get install -y docker.io)"
  command -v node >/dev/null || die "Node.js 20 is missing"
  for tool in mkfs.ext4 e2fsck resize2fs dumpe2fs losetup mount; do
    command -v "$tool" >/dev/null || die "$tool is missing: environment volumes need it (apt-get install -y e2fsprogs util-linux)"
  done
  command -v nvidia-smi >/dev/null || echo "warning: nvidia-smi not found: this host will register as CPU-only"
fi

src=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/opt/remotegpu
etc=$root/etc/remotegpu
env_file=$etc/agent.env
unit_dir=$root/etc/systemd/system
echo "installing into $dest"
mkdir -p "$dest"
tar -C "$src" --exclude=./node_modules --exclude=./data --exclude=./.git -cf - . | tar -C "$dest" -xf -
if [ -z "$root" ]; then
  (cd "$dest" && npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund)
else
  echo "--prefix: skipping the npm build"
fi

# The environment file holds the token: it is created empty with mode 0600 (umask 077, mktemp)
# before anything is written to it, then moved into place. printf is a builtin: no process sees it.
umask 077
mkdir -p "$etc"
chmod 0700 "$etc"
tmp=$(mktemp "$etc/.agent.env.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 0600 "$tmp"
{
  printf 'REMOTEGPU_CONTROLLER=%s\n' "$controller"
  printf 'REMOTEGPU_JOIN_TOKEN=%s\n' "$token"
  if [ -f "$env_file" ]; then
    # Re-install: keep every other line (variables added by hand), replace these two.
    grep -v -e '^REMOTEGPU_CONTROLLER=' -e '^REMOTEGPU_JOIN_TOKEN=' "$env_file" || true
  else
    printf 'REMOTEGPU_DATA_DIR=/var/lib/remotegpu\n'
    printf 'REMOTEGPU_AGENT_LISTEN=%s\n' "${REMOTEGPU_AGENT_LISTEN:-0.0.0.0:9091}"
    [ -z "${REMOTEGPU_PUBLIC_ADDRESS:-}" ] || printf 'REMOTEGPU_PUBLIC_ADDRESS=%s\n' "$REMOTEGPU_PUBLIC_ADDRESS"
    [ -z "${REMOTEGPU_GPU_MODE:-}" ] || printf 'REMOTEGPU_GPU_MODE=%s\n' "$REMOTEGPU_GPU_MODE"
    [ -z "${REMOTEGPU_AGENT_METRICS_ADDR:-}" ] || printf 'REMOTEGPU_AGENT_METRICS_ADDR=%s\n' "$REMOTEGPU_AGENT_METRICS_ADDR"
  fi
} >"$tmp"
existed=$([ -f "$env_file" ] && echo yes || echo no)
mv -f "$tmp" "$env_file"
trap - EXIT
if [ "$existed" = yes ]; then
  echo "updated REMOTEGPU_CONTROLLER and REMOTEGPU_JOIN_TOKEN in $env_file (mode 0600; its other lines kept)"
else
  echo "wrote $env_file (mode 0600)"
fi

mkdir -p "$unit_dir"
install -m 0644 "$dest/deploy/remotegpu-agent.service" "$unit_dir/remotegpu-agent.service"
if [ -z "$root" ]; then
  systemctl daemon-reload
  systemctl enable --now remotegpu-agent
  echo "remotegpu-agent is running: journalctl -u remotegpu-agent -f"
else
  echo "--prefix: skipping systemctl (unit written to $unit_dir/remotegpu-agent.service)"
fi
