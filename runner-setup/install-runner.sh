#!/usr/bin/env bash
# Makes this machine (Ubuntu 22.04/24.04 or Debian 12, x86-64) a self-hosted GitHub Actions runner for
# the glm-dllama workflows: an unprivileged runner user, Node, the C++ toolchain and a glm-engine build,
# the pinned runner verified by sha256, the needrestart exclusion, no metadata-service access for jobs,
# registration and the systemd service. Root never runs or writes a file inside the runner folder,
# which the job user owns: the runner is unpacked there as that user, and the unit file is written here.
# Idempotent: every step checks the machine first and is skipped when already done, so the same command
# finishes a half-done install or re-registers a runner. --dry-run prints the plan and changes nothing.
#
# The registration token is read from stdin (--token-stdin) or $RUNNER_TOKEN, never from an argument
# or a file on disk; it is short-lived (one hour) and is never printed. See docs/runner-setup.md.
set -euo pipefail

RUNNER_VERSION=2.336.0
# sha256 of actions-runner-linux-x64-2.336.0.tar.gz, as published in the release notes of
# https://github.com/actions/runner/releases/tag/v2.336.0
RUNNER_SHA256=04cf0be1aff4c3ec3554466c39124ca250e3effd8873bb7e8d68535aa9505d5d
NODE_MAJOR=24
# NodeSource's repository signing key; the key fetched over HTTPS must have this fingerprint.
NODESOURCE_KEY_FINGERPRINT=6F71F525282841EEDAF851B42F59B5F99B1BE0B4

usage() {
  cat <<'EOF'
usage: install-runner.sh --url URL [--labels L1,L2] [--name NAME] [--ephemeral | --persistent]
                         [--token-stdin] [--user USER] [--dir DIR] [--glm-dllama-ref REF]
                         [--skip-register] [--dry-run] [--root DIR]

  --url URL            repository or organisation URL the runner serves (https://github.com/OWNER[/REPO])
  --labels L1,L2       labels besides self-hosted,linux,x64 (for example cpu-32g or gpu)
  --name NAME          runner name (default: the host name)
  --ephemeral          take one job, then unregister (default)
  --persistent         keep taking jobs: only on a machine that no pull-request job shares with a
                       job holding secrets (see docs/security.md)
  --token-stdin        read the registration token from stdin (else $RUNNER_TOKEN)
  --user USER          the unprivileged account that runs jobs (default: glm-runner)
  --dir DIR            runner folder (default: /opt/actions-runner)
  --glm-dllama-ref REF glm-dllama commit (or tag) whose engine is built (default: v1)
  --skip-register      prepare everything but the registration and the service (first boot)
  --dry-run            print every step, change nothing
  --root DIR           with --dry-run: read the machine's state under DIR (for tests)
EOF
}

url='' labels='' name='' ephemeral=true token_stdin=false skip_register=false dry_run=false root=''
runner_user=glm-runner runner_dir=/opt/actions-runner glm_ref=v1
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2:?--url needs a value}; shift 2 ;;
    --labels) labels=${2:?--labels needs a value}; shift 2 ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --ephemeral) ephemeral=true; shift ;;
    --persistent) ephemeral=false; shift ;;
    --token-stdin) token_stdin=true; shift ;;
    --user) runner_user=${2:?--user needs a value}; shift 2 ;;
    --dir) runner_dir=${2:?--dir needs a value}; shift 2 ;;
    --glm-dllama-ref) glm_ref=${2:?--glm-dllama-ref needs a value}; shift 2 ;;
    --skip-register) skip_register=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    --root) root=${2:?--root needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-runner.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() {
  echo "install-runner.sh: $*" >&2
  exit 1
}

[ -n "$root" ] && ! $dry_run && fail '--root is only for --dry-run'
[[ "$runner_user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--user $runner_user is not a valid user name"
[[ "$labels" =~ ^[A-Za-z0-9._,-]*$ ]] || fail "--labels $labels: only letters, digits, '.', '_', '-' and commas"
[[ "$runner_dir" =~ ^/[A-Za-z0-9._/-]+$ ]] || fail "--dir $runner_dir must be an absolute path of letters, digits, '.', '_', '-'"
[[ "$glm_ref" =~ ^[A-Za-z0-9._/-]+$ ]] || fail "--glm-dllama-ref $glm_ref is not a tag, branch or commit"
name=${name:-$(hostname)}
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || fail "--name $name: only letters, digits, '.', '_' and '-'"

token=''
if ! $skip_register; then
  [[ "$url" =~ ^https://github\.com/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$ ]] || fail "--url must be https://github.com/OWNER or https://github.com/OWNER/REPO (got '${url}')"
  if $token_stdin; then
    IFS= read -r token || true
  else
    token=${RUNNER_TOKEN:-}
  fi
  [ -n "$token" ] || fail 'no registration token: pipe it to --token-stdin or set RUNNER_TOKEN (see docs/runner-setup.md)'
fi

if ! $dry_run; then
  [ "$(id -u)" -eq 0 ] || fail 'run as root (sudo), or use --dry-run'
  [ "$(uname -m)" = x86_64 ] || fail "the pinned runner is linux-x64; this machine is $(uname -m)"
fi

# --- the steps: printed under --dry-run, run otherwise; the token never reaches the output ---

masked() {
  local text="$*"
  if [ -n "$token" ]; then text=${text//"$token"/***}; fi
  printf '%s\n' "$text"
}

# Runs a shell command line (pipes and redirections allowed), or prints it under --dry-run. The line
# shows the token variable when it is exported, as the command receives it, but never its value.
step() {
  local shown="+ $1"
  [ -n "${ACTIONS_RUNNER_INPUT_TOKEN:-}" ] && shown="+ ACTIONS_RUNNER_INPUT_TOKEN=*** $1"
  if $dry_run; then
    masked "$shown"
  else
    masked "$shown" >&2
    bash -c "$1"
  fi
}

skip() {
  echo "= $*"
}

# The command line that runs $2 as the runner user; $1 names environment variables to hand over.
as_runner() {
  local keep=''
  [ -n "$1" ] && keep=" --preserve-env=$1"
  printf "sudo%s -u %s -H bash -c '%s'" "$keep" "$runner_user" "${2//\'/\'\\\'\'}"
}

exists() {
  [ -e "$root$1" ]
}

user_exists() {
  grep -q "^$runner_user:" "$root/etc/passwd" 2>/dev/null
}

node_ok() {
  if [ -n "$root" ]; then
    exists /usr/bin/node
  else
    command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$NODE_MAJOR" ]
  fi
}

echo "glm-dllama runner setup: runner $RUNNER_VERSION, user $runner_user, folder $runner_dir$($dry_run && echo ' (dry run: nothing is changed)')"

# 1. Packages: the C++ toolchain the engine needs (node-gyp: make, g++, python3), and the tools the workflows use.
step 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential g++ make python3 git curl jq ca-certificates gnupg iptables'

# 2. Node from NodeSource's signed apt repository, its key checked against the pinned fingerprint.
if node_ok; then
  skip "Node $NODE_MAJOR or later is installed"
else
  step "key=\$(curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key) && [ \"\$(printf '%s\\n' \"\$key\" | gpg --show-keys --with-colons | awk -F: '/^fpr/ { print \$10; exit }')\" = $NODESOURCE_KEY_FINGERPRINT ] && install -d -m 0755 /etc/apt/keyrings && printf '%s\\n' \"\$key\" | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg"
  step "echo 'deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_$NODE_MAJOR.x nodistro main' > /etc/apt/sources.list.d/nodesource.list"
  step 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs'
fi

# 3. The unprivileged account jobs run as: no sudo, no password, its own home.
if user_exists; then
  skip "user $runner_user exists"
else
  step "useradd --system --create-home --shell /bin/bash $runner_user"
fi

# 4. The runner, pinned and verified before it is unpacked. It is downloaded into a folder only root can
# reach, installdependencies.sh runs from a copy unpacked there (never from the job user's folder), and
# the runner folder is filled by the job user itself. An upgrade stops the service around the unpack.
tarball="actions-runner-linux-x64-$RUNNER_VERSION.tar.gz"
unit="actions.runner.$name.service"
unit_file=/etc/systemd/system/$unit
if exists "$runner_dir/.runner-version" && [ "$(cat "$root$runner_dir/.runner-version")" = "$RUNNER_VERSION" ]; then
  skip "runner $RUNNER_VERSION is unpacked in $runner_dir"
else
  if $dry_run; then
    download=/tmp/glm-dllama-runner.XXXXXXXXXX
    echo "+ download=\$(mktemp -d -t glm-dllama-runner.XXXXXXXXXX)"
  else
    download=$(mktemp -d -t glm-dllama-runner.XXXXXXXXXX)
    trap 'rm -rf "$download"' EXIT
  fi
  step "curl -fsSL -o $download/$tarball https://github.com/actions/runner/releases/download/v$RUNNER_VERSION/$tarball"
  step "echo '$RUNNER_SHA256  $download/$tarball' | sha256sum --check --strict"
  step "mkdir $download/runner && tar -xzf $download/$tarball -C $download/runner && $download/runner/bin/installdependencies.sh"
  running=false
  exists "$unit_file" && running=true
  $running && step "systemctl stop $unit"
  step "install -d -o $runner_user -g $runner_user $runner_dir"
  step "$(as_runner '' "tar -xzf - -C $runner_dir && echo $RUNNER_VERSION > $runner_dir/.runner-version") < $download/$tarball"
  $running && step "systemctl start $unit"
  step "rm -rf $download"
fi

# 5. needrestart (Ubuntu) must not restart the runner service in the middle of a job after an upgrade.
needrestart_conf=/etc/needrestart/conf.d/glm-dllama-runner.conf
if exists "$needrestart_conf"; then
  skip "$needrestart_conf exists"
else
  step "install -d /etc/needrestart/conf.d && echo '\$nrconf{override_rc}->{qr(^actions\\.runner\\..+\\.service\$)} = 0;' > $needrestart_conf"
fi

# 6. Jobs must not read the cloud metadata service: it serves the Droplet's user-data and tags to any
# local process. A boot-time unit rejects the runner user's packets to it (root keeps access). It runs
# before the network comes up (network-pre.target), and the runner's unit requires it (step 9).
metadata_unit=/etc/systemd/system/glm-dllama-block-metadata.service
if exists "$metadata_unit" && grep -q '^Before=network-pre.target$' "$root$metadata_unit"; then
  skip "$metadata_unit exists"
else
  rule="OUTPUT -d 169.254.169.254 -m owner --uid-owner $runner_user -j REJECT"
  step "printf '%s\\n' '[Unit]' 'Description=Keep the GitHub runner user away from the metadata service' 'Before=network-pre.target' 'Wants=network-pre.target' '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' 'ExecStart=/usr/sbin/iptables -I $rule' 'ExecStop=/usr/sbin/iptables -D $rule' '[Install]' 'WantedBy=multi-user.target' > $metadata_unit"
  step "systemctl daemon-reload && systemctl enable glm-dllama-block-metadata.service && systemctl restart glm-dllama-block-metadata.service"
fi

# 7. glm-engine, built once as the runner user: proves the toolchain and warms the npm cache for jobs.
engine_dir=/home/$runner_user/glm-dllama
if exists "$engine_dir/build/Release/glm-engine" && [ "$(cat "$root$engine_dir/.glm-dllama-ref" 2>/dev/null)" = "$glm_ref" ]; then
  skip "glm-engine ($glm_ref) is built in $engine_dir"
else
  step "$(as_runner '' "rm -rf $engine_dir && git init --quiet $engine_dir && git -C $engine_dir fetch --quiet --depth 1 https://github.com/glm-dllama/glm-dllama.git $glm_ref && git -C $engine_dir checkout --quiet FETCH_HEAD")"
  step "$(as_runner '' "cd $engine_dir && npm ci && test -x build/Release/glm-engine && echo $glm_ref > .glm-dllama-ref")"
fi

if $skip_register; then
  echo "prepared; to register: gh api -X POST repos/OWNER/REPO/actions/runners/registration-token --jq .token | ssh root@HOST $0 --url https://github.com/OWNER/REPO --labels LABELS --token-stdin"
  exit 0
fi

# 8. Registration with the short-lived token, handed to config.sh in its environment
# (ACTIONS_RUNNER_INPUT_TOKEN) rather than on a command line other users could read in ps.
# --replace lets a rebuilt machine take over its old name.
if exists "$runner_dir/.runner"; then
  skip "already registered ($runner_dir/.runner); to move it, run '$runner_dir/config.sh remove' first"
else
  config="./config.sh --unattended --url $url --name $name --work _work --replace"
  [ -n "$labels" ] && config+=" --labels $labels"
  $ephemeral && config+=' --ephemeral'
  export ACTIONS_RUNNER_INPUT_TOKEN=$token
  step "$(as_runner ACTIONS_RUNNER_INPUT_TOKEN "cd $runner_dir && $config")"
  unset ACTIONS_RUNNER_INPUT_TOKEN
fi

# 9. The systemd service, written here rather than by the runner's svc.sh (which root would run from the
# job user's folder). It starts after the metadata block and not without it. An ephemeral runner's
# service ends with its one job (it exits 0); a persistent one is restarted whenever it stops.
if exists "$unit_file"; then
  skip "service $unit is installed"
else
  restart=always
  $ephemeral && restart=on-failure
  step "printf '%s\\n' '[Unit]' 'Description=GitHub Actions runner $name' 'After=network-online.target glm-dllama-block-metadata.service' 'Wants=network-online.target' 'Requires=glm-dllama-block-metadata.service' '[Service]' 'ExecStart=$runner_dir/bin/runsvc.sh' 'User=$runner_user' 'WorkingDirectory=$runner_dir' 'KillMode=process' 'KillSignal=SIGTERM' 'TimeoutStopSec=5min' 'Restart=$restart' 'RestartSec=5s' '[Install]' 'WantedBy=multi-user.target' > $unit_file"
  step "systemctl daemon-reload && systemctl enable --now $unit"
fi

echo "done: runner $name ($($ephemeral && echo ephemeral || echo persistent)) for $url"
