#!/usr/bin/env bash
# Installs the remotegpu agent on a GPU server as a systemd service.
#   sudo REMOTEGPU_CONTROLLER=controller.example.com:9090 REMOTEGPU_JOIN_TOKEN=... bash deploy/install-agent.sh
# Run it from a checkout of this repository. Needs: root, systemd, Docker, Node.js 20 with npm,
# and the NVIDIA driver (+ nvidia-container-toolkit or CDI specs for the nvidia/cdi GPU modes).
set -euo pipefail

: "${REMOTEGPU_CONTROLLER:?set REMOTEGPU_CONTROLLER=HOST:PORT of the controller gRPC port}"
: "${REMOTEGPU_JOIN_TOKEN:?set REMOTEGPU_JOIN_TOKEN to the token the controller printed}"
[ "$(id -u)" = 0 ] || { echo "run as root (the agent manages Docker and device nodes)"; exit 1; }
command -v docker >/dev/null || { echo "Docker is missing: install it first (e.g. apt-get install -y docker.io)"; exit 1; }
command -v node >/dev/null || { echo "Node.js 20 is missing"; exit 1; }
command -v nvidia-smi >/dev/null || echo "warning: nvidia-smi not found: this host will register as CPU-only"

src=$(cd "$(dirname "$0")/.." && pwd)
dest=/opt/remotegpu
echo "installing into $dest"
mkdir -p "$dest"
tar -C "$src" --exclude=./node_modules --exclude=./data --exclude=./.git -cf - . | tar -C "$dest" -xf -
(cd "$dest" && npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund)

mkdir -p /etc/remotegpu
umask 077
if [ ! -f /etc/remotegpu/agent.env ]; then
  cat > /etc/remotegpu/agent.env <<ENV
REMOTEGPU_CONTROLLER=$REMOTEGPU_CONTROLLER
REMOTEGPU_JOIN_TOKEN=$REMOTEGPU_JOIN_TOKEN
REMOTEGPU_DATA_DIR=/var/lib/remotegpu
REMOTEGPU_AGENT_LISTEN=${REMOTEGPU_AGENT_LISTEN:-0.0.0.0:9091}
${REMOTEGPU_PUBLIC_ADDRESS:+REMOTEGPU_PUBLIC_ADDRESS=$REMOTEGPU_PUBLIC_ADDRESS}
${REMOTEGPU_GPU_MODE:+REMOTEGPU_GPU_MODE=$REMOTEGPU_GPU_MODE}
ENV
fi
install -m 0644 "$dest/deploy/remotegpu-agent.service" /etc/systemd/system/remotegpu-agent.service
systemctl daemon-reload
systemctl enable --now remotegpu-agent
echo "remotegpu-agent is running: journalctl -u remotegpu-agent -f"
