#!/bin/sh
# Entrypoint of the remotegpu devbox test image (busybox sh).
#
# With arguments it runs them instead (`docker run IMAGE sh`). Without, it:
#   1. generates the SSH host keys that are missing. /etc/ssh lives in the container's writable
#      layer, which survives stop/start, so the keys are made once per container, not per start;
#   2. makes sure /root/.ssh (0700) and /root/workspace exist (the platform bind-mounts the
#      user's keys read-only at /root/.ssh/authorized_keys);
#   3. hands the container's environment (NVIDIA_VISIBLE_DEVICES, PATH, ...) to SSH sessions:
#      sshd gives sessions a fresh environment, so it is written as one `SetEnv` line that sshd
#      reads at start. This covers `ssh host 'cmd'` (no login shell, no profile) too;
#   4. serves a stand-in page on the Jupyter port (busybox httpd, ${JUPYTER_PORT:-8888});
#   5. execs sshd in the foreground, so sshd is PID 1 and `docker stop` (SIGTERM) ends it at once.
set -eu

say() { echo "devbox: $*"; }

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

ENV_CONF=/etc/ssh/sshd_config.d/50-container-env.conf
NL='
'

# Writes ENV_CONF: every exported variable except those sshd or the login itself sets per session.
# Values are double-quoted for sshd's config parser, with \ and " escaped. A value spanning lines
# cannot be written there and is skipped with a message.
export_env_to_ssh() {
  line=''
  count=0
  for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
    case "$name" in
      HOME | HOSTNAME | PWD | OLDPWD | SHLVL | TERM | USER | LOGNAME | SHELL | MAIL | _ | SSH_*) continue ;;
    esac
    # `env` prints continuation lines of multi-line values too: keep only real variables.
    eval "isset=\${$name+x}"
    [ -n "$isset" ] || continue
    eval "value=\$$name"
    case "$value" in
      *"$NL"*)
        say "not passing $name to SSH sessions: its value spans several lines"
        continue
        ;;
    esac
    escaped=$(printf '%s\n' "$value" | sed 's/[\\"]/\\&/g')
    line="$line \"$name=$escaped\""
    count=$((count + 1))
  done
  mkdir -p "$(dirname "$ENV_CONF")"
  if [ "$count" -gt 0 ]; then
    (umask 077 && printf 'SetEnv%s\n' "$line" >"$ENV_CONF")
  else
    rm -f "$ENV_CONF"
  fi
  say "passing $count environment variables to SSH sessions"
}

mkdir -p /etc/ssh /run/sshd /var/empty /root/workspace
chmod 0755 /run/sshd /var/empty
# /root/.ssh may be a read-only mount of its own: then its mode is the platform's business.
mkdir -p /root/.ssh && chmod 0700 /root/.ssh 2>/dev/null || true

if [ -s /etc/ssh/ssh_host_ed25519_key ]; then
  say "reusing the SSH host keys of this container"
else
  say "generating SSH host keys (first start of this container)"
fi
ssh-keygen -A >/dev/null
say "host key $(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub)"

if [ -f /root/.ssh/authorized_keys ]; then
  say "authorized keys: $(grep -c '^[^#]' /root/.ssh/authorized_keys || true) in /root/.ssh/authorized_keys"
  # sshd's StrictModes refuses a keys file owned by another user or writable by group/others.
  set -- $(stat -L -c '%u %a' /root/.ssh/authorized_keys)
  if [ "$1" != 0 ] || [ $((0$2 & 022)) != 0 ]; then
    say "warning: sshd will refuse /root/.ssh/authorized_keys (owner uid $1, mode $2): it must be owned by root and not group/world-writable"
  fi
else
  say "warning: no /root/.ssh/authorized_keys, nobody can log in over SSH"
fi

export_env_to_ssh

jupyter_port=${JUPYTER_PORT:-8888}
# httpd forks into the background; when sshd (PID 1) exits the kernel ends it with the container.
if httpd -p "$jupyter_port" -h /srv/jupyter; then
  say "jupyter stand-in (busybox httpd) listening on port $jupyter_port"
else
  say "warning: jupyter stand-in could not listen on port $jupyter_port"
fi

/usr/sbin/sshd -t
say "sshd starting on port 22"
exec /usr/sbin/sshd -D -e
