#!/usr/bin/env bash
# Makes this Droplet (Ubuntu 22.04/24.04 or Debian 12, x86-64) a model server behind the public gateway:
# the C++ toolchain and Node, glm-dllama built from the checkout this script is in (copied to
# /opt/glm-dllama, owned by root), an unprivileged glm-dllama user, /etc/glm-dllama/serve.env and the
# systemd unit (deploy/model-server/glm-dllama-serve.service), enabled. Run by the cloud-init files in
# deploy/cloud-init at first boot; idempotent, so it can be rerun to upgrade. It starts nothing: put the
# model at GLM_DLLAMA_MODEL and the gateway's key in serve.env over SSH, then
# `systemctl start glm-dllama-serve` (docs/demo-api.md).
#
#   install-model-server.sh [--gpu]     --gpu: the Vulkan loader, and serve --device vulkan
set -euo pipefail

NODE_MAJOR=24
# NodeSource's repository signing key; the key fetched over HTTPS must have this fingerprint
# (the same key runner-setup/install-runner.sh checks).
NODESOURCE_KEY_FINGERPRINT=6F71F525282841EEDAF851B42F59B5F99B1BE0B4
PREFIX=/opt/glm-dllama
ENV_FILE=/etc/glm-dllama/serve.env
MODEL_DIR=/var/lib/glm-dllama/models

gpu=false
case "${1:-}" in
  --gpu) gpu=true ;;
  '') ;;
  *) echo "usage: install-model-server.sh [--gpu]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "install-model-server.sh: run as root" >&2; exit 1; }
source_dir=$(cd "$(dirname "$0")/../.." && pwd)

packages=(build-essential g++ make python3 git curl ca-certificates gnupg)
$gpu && packages+=(libvulkan1)
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$NODE_MAJOR" ]; then
  key=$(curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key)
  fingerprint=$(printf '%s\n' "$key" | gpg --show-keys --with-colons | awk -F: '/^fpr/ { print $10; exit }')
  [ "$fingerprint" = "$NODESOURCE_KEY_FINGERPRINT" ] || { echo "NodeSource key fingerprint $fingerprint is not the pinned one" >&2; exit 1; }
  install -d -m 0755 /etc/apt/keyrings
  printf '%s\n' "$key" | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_$NODE_MAJOR.x nodistro main" > /etc/apt/sources.list.d/nodesource.list
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
fi

getent passwd glm-dllama >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin glm-dllama
# The GPU's device nodes belong to the video and render groups.
if $gpu; then
  for group in video render; do
    getent group "$group" >/dev/null && usermod -a -G "$group" glm-dllama
  done
fi

# A root-owned copy, built in place: the service user can read and run it, not change it.
if [ "$source_dir" != "$PREFIX" ]; then
  install -d -m 0755 "$PREFIX"
  tar -C "$source_dir" --exclude=./node_modules --exclude=./.git -cf - . | tar -C "$PREFIX" -xf -
fi
(cd "$PREFIX" && npm ci --no-audit --no-fund && npm run build)

install -d -m 0755 "$MODEL_DIR"
install -d -m 0750 -g glm-dllama /etc/glm-dllama
if [ ! -e "$ENV_FILE" ]; then
  # The private address the gateway reaches, from the Droplet's metadata service.
  host=$(curl -fsS --max-time 5 http://169.254.169.254/metadata/v1/interfaces/private/0/ipv4/address || echo 127.0.0.1)
  options=''
  $gpu && options='--device vulkan'
  umask 027
  cat > "$ENV_FILE" <<ENV
# glm-dllama serve settings (deploy/model-server/glm-dllama-serve.service).
GLM_DLLAMA_MODEL=$MODEL_DIR/model.m
GLM_DLLAMA_HOST=$host
GLM_DLLAMA_SERVE_OPTIONS=$options
# The gateway's GLM_DLLAMA_UPSTREAM_KEY; the service refuses to start while this is empty.
GLM_DLLAMA_API_KEYS=
ENV
  chgrp glm-dllama "$ENV_FILE"
fi

install -m 0644 "$PREFIX/deploy/model-server/glm-dllama-serve.service" /etc/systemd/system/glm-dllama-serve.service
systemctl daemon-reload
systemctl enable glm-dllama-serve.service
echo "glm-dllama model server installed; put the model at $MODEL_DIR/model.m and the key in $ENV_FILE, then: systemctl start glm-dllama-serve"
