#!/usr/bin/env bash
# Builds the devbox test image remotegpu/devbox:1 (also tagged :latest) without any image
# registry: a small rootfs with busybox, a real OpenSSH server and a Jupyter stand-in, imported
# with `docker import`. Used by tests, CI and `npm start`.
#   bash scripts/build-test-image.sh [--force]
#
# Inputs: Debian packages busybox-static, openssh-server and openssh-client, fetched with
# `apt-get download` into ${XDG_CACHE_HOME:-$HOME/.cache}/remotegpu/debs (or, when that fails,
# copied from the host where installed), the shared libraries their programs need (resolved with
# ldd: from the host, else from library packages fetched the same way), and the files under
# scripts/test-image/rootfs (entrypoint, sshd_config, passwd, ...).
#
# Idempotent: the image carries a label with the SHA-256 of the rootfs tar and import options;
# when an image with that label exists, nothing is imported (only tags are fixed). --force
# imports anyway. Needs Debian/Ubuntu (apt-get update done), a Docker engine, GNU tar.
set -euo pipefail
umask 022

IMAGE=remotegpu/devbox
TAGS=(1 latest)
HASH_LABEL=remotegpu.devbox.content-hash
PACKAGES=(busybox-static openssh-server openssh-client)
# Programs taken from the OpenSSH packages (scp: the server side of `scp -O`).
SSH_PROGRAMS=(usr/sbin/sshd usr/bin/ssh-keygen usr/bin/ssh usr/bin/scp)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OVERLAY=$SCRIPT_DIR/test-image/rootfs
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/remotegpu/debs

step() { printf '[build-test-image] %s\n' "$*"; }
die() {
  printf '[build-test-image] error: %s\n' "$*" >&2
  exit 1
}

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: build-test-image.sh [--force])" ;;
  esac
done

for tool in docker tar dpkg dpkg-deb dpkg-query ldd sha256sum awk; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "cannot reach the Docker engine (is it running, and may this user use /var/run/docker.sock?)"

mkdir -p "$CACHE"
# Test files running in parallel may all call this script: one build at a time, the others then
# find the image up to date.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.build.lock"
  flock 9
fi

start_s=$(date +%s.%N)
work=$(mktemp -d "${TMPDIR:-/tmp}/remotegpu-devbox.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
pkgroot=$work/pkgs # the unpacked busybox and OpenSSH packages
libroot=$work/libs # unpacked library packages the host lacks
mkdir -p "$CACHE" "$rootfs" "$pkgroot" "$libroot"

# apt's view of packages, filled by apt_info: candidate version, architecture, and the library
# packages (lib*, zlib*) among the dependencies. apt-cache takes about a second per call, so
# packages are looked up in batches.
declare -A VER=() ARCH=() LIBDEPS=()
NATIVE_ARCH=$(dpkg --print-architecture)

# Records apt's candidate for each PACKAGE not looked up yet. Unknown packages are left out.
apt_info() {
  local todo=() pkg ver arch deps
  for pkg in "$@"; do [ -n "${VER[$pkg]+x}" ] || todo+=("$pkg"); done
  [ "${#todo[@]}" -gt 0 ] || return 0
  while IFS=' ' read -r pkg ver arch deps; do
    VER[$pkg]=$ver ARCH[$pkg]=$arch LIBDEPS[$pkg]=$deps
  # With foreign architectures enabled apt shows a stanza per architecture: keep the native one.
  done < <(apt-cache show --no-all-versions "${todo[@]}" 2>/dev/null | awk -F': ' -v native="$NATIVE_ARCH" '
      /^Package:/ {p = $2; v = ""; a = ""; d = ""}
      /^Version:/ {v = $2}
      /^Architecture:/ {a = $2}
      /^(Pre-)?Depends:/ {d = d "," $2}
      /^$/ {emit()}
      END {emit()}
      function emit() {
        if (p != "" && (a == native || a == "all")) print p, v, a, libs(d)
        p = ""
      }
      function libs(deps,   n, i, parts, name, out) {
        n = split(deps, parts, /[,|]/)
        for (i = 1; i <= n; i++) {
          name = parts[i]; sub(/\(.*/, "", name); sub(/:any/, "", name); gsub(/[ \t]/, "", name)
          if (name ~ /^(lib|zlib)/) out = out " " name
        }
        return out
      }')
}

# Prints the path of PACKAGE's candidate .deb in the cache, downloading it when missing.
# Fails when apt knows no candidate or the download fails.
fetch_deb() {
  local pkg=$1 deb
  apt_info "$pkg"
  [ -n "${VER[$pkg]:-}" ] || return 1
  deb=$CACHE/${pkg}_${VER[$pkg]//:/%3a}_${ARCH[$pkg]}.deb
  if [ ! -s "$deb" ]; then
    # -o APT::Sandbox::User=root: the cache is usually not readable by the _apt user.
    (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$pkg" >"$work/apt.log" 2>&1) || {
      cat "$work/apt.log" >&2
      return 1
    }
    [ -s "$deb" ] || return 1
  fi
  printf '%s\n' "$deb"
}

# Packages installed on this host, read once.
declare -A INSTALLED=()
while read -r pkg status; do
  [ "$status" = "install ok installed" ] && INSTALLED[${pkg%%:*}]=1
done < <(dpkg-query -W -f '${Package} ${Status}\n' 2>/dev/null || true)
host_has() { [ -n "${INSTALLED[$1]:-}" ]; }

# Unpacks PACKAGE into DIR: its .deb from the cache, else the host's installed files.
unpack() {
  local pkg=$1 dir=$2 deb
  if deb=$(fetch_deb "$pkg"); then
    dpkg-deb -x "$deb" "$dir"
    printf '  %s\n' "${deb##*/}"
  elif host_has "$pkg"; then
    dpkg-query -L "$pkg" | while IFS= read -r f; do
      if [ -f "$f" ] || [ -L "$f" ]; then printf '%s\n' "${f#/}"; fi
    done | tar -C / --no-recursion -cf - -T - | tar -C "$dir" -xf -
    printf '  %s (files installed on this host)\n' "$pkg"
  else
    die "cannot get package $pkg: apt-get download failed and it is not installed (run apt-get update?)"
  fi
}

# Prints the library packages (lib*, zlib*) PACKAGE depends on, one per line.
lib_depends() {
  if [ -n "${VER[$1]:-}" ]; then
    printf '%s\n' ${LIBDEPS[$1]}
  else
    dpkg-query -W -f '${Pre-Depends},${Depends}\n' "$1" 2>/dev/null | tr ',|' '\n\n' |
      sed -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep -E '^(lib|zlib)' || true
  fi
}

step "fetching packages ${PACKAGES[*]} (cache: $CACHE)"
apt_info "${PACKAGES[@]}"
for pkg in "${PACKAGES[@]}"; do unpack "$pkg" "$pkgroot"; done

step "assembling rootfs in $rootfs"
# Merged /usr, like Debian 12.
mkdir -p "$rootfs"/usr/{bin,sbin,lib,lib64} "$rootfs"/{etc,root,run,srv,tmp,var/log,var/tmp,var/empty}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$rootfs/$d"; done
ln -s ../run "$rootfs/var/run"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"

step "installing busybox and its applet links"
[ -x "$pkgroot/bin/busybox" ] || die "busybox-static did not provide /bin/busybox"
cp "$pkgroot/bin/busybox" "$rootfs/usr/bin/busybox"
applets=0
while IFS= read -r applet; do
  case "$applet" in bin/* | sbin/* | usr/bin/* | usr/sbin/*) ;; *) continue ;; esac
  [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] || {
    ln -s /usr/bin/busybox "$rootfs/$applet"
    applets=$((applets + 1))
  }
done < <("$rootfs/usr/bin/busybox" --list-full)
printf '  %d applets\n' "$applets"

step "installing OpenSSH programs: ${SSH_PROGRAMS[*]##*/}"
for prog in "${SSH_PROGRAMS[@]}"; do
  [ -f "$pkgroot/$prog" ] || die "package did not provide /$prog"
  cp --remove-destination "$pkgroot/$prog" "$rootfs/$prog"
done
mkdir -p "$rootfs/etc/ssh/sshd_config.d"
[ -f "$pkgroot/etc/ssh/moduli" ] && cp "$pkgroot/etc/ssh/moduli" "$rootfs/etc/ssh/moduli"

step "resolving shared libraries with ldd"
elves=()
for prog in "${SSH_PROGRAMS[@]}"; do elves+=("$rootfs/$prog"); done
fetched=" ${PACKAGES[*]} "
for _round in 1 2 3 4 5 6 7 8; do
  libpath=$(find "$libroot" -name '*.so*' -printf '%h\n' | sort -u | paste -sd: -)
  ldd_out=$(LD_LIBRARY_PATH=$libpath ldd "${elves[@]}" 2>&1) || die "ldd failed: $ldd_out"
  missing=$(awk '/=> not found/{print $1}' <<<"$ldd_out" | sort -u | paste -sd' ' -)
  [ -z "$missing" ] && break
  # The missing libraries come from dependencies (direct or indirect) of the packages unpacked
  # so far that this host does not have: fetch those and look again.
  candidates=()
  for pkg in $fetched; do
    while IFS= read -r dep; do
      [ -n "$dep" ] && [[ "$fetched" != *" $dep "* ]] || continue
      host_has "$dep" && continue
      [[ " ${candidates[*]} " == *" $dep "* ]] || candidates+=("$dep")
    done < <(lib_depends "$pkg")
  done
  [ "${#candidates[@]}" -gt 0 ] || die "cannot find packages for missing libraries: $missing"
  printf '  missing %s: fetching %s\n' "$missing" "${candidates[*]}"
  apt_info "${candidates[@]}"
  for pkg in "${candidates[@]}"; do
    unpack "$pkg" "$libroot"
    fetched+="$pkg "
  done
done
[ -z "$missing" ] || die "libraries still missing after fetching their packages: $missing"
# Lines look like "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
# "/lib64/ld-linux-x86-64.so.2 (0x...)" (the loader). Fetched libraries keep their package path.
libs=0
while IFS= read -r src; do
  dest=${src#"$libroot"}
  mkdir -p "$rootfs$(dirname "$dest")"
  cp -L "$src" "$rootfs$dest"
  libs=$((libs + 1))
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' <<<"$ldd_out" | sort -u)
printf '  %d libraries\n' "$libs"

step "adding files from scripts/test-image/rootfs"
cp -R "$OVERLAY/." "$rootfs/"
chmod 0755 "$rootfs/entrypoint.sh"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/ssh/sshd_config"
chmod 0640 "$rootfs/etc/shadow"
chmod 0700 "$rootfs/root"
mkdir -p "$rootfs/root/.ssh" "$rootfs/root/workspace" "$rootfs/run/sshd" "$rootfs/etc/profile.d"
chmod 0700 "$rootfs/root/.ssh"
# Login records of pty sessions; without them sshd logs an error at every logout.
touch "$rootfs/run/utmp" "$rootfs/var/log/wtmp" "$rootfs/var/log/lastlog"

changes=(
  'ENTRYPOINT ["/entrypoint.sh"]'
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'WORKDIR /root'
  'EXPOSE 22 8888'
  'LABEL org.opencontainers.image.title="remotegpu devbox test image (busybox + OpenSSH + Jupyter stand-in)"'
)

step "packing rootfs and hashing it"
# Fixed order, times and owners: the same inputs give the same tar, hence the same hash.
tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/rootfs.tar" .
hash=$({
  sha256sum <"$work/rootfs.tar"
  printf '%s\n' "${changes[@]}"
} | sha256sum | cut -c1-64)
printf '  rootfs %s MiB, content hash %s\n' "$(($(stat -c %s "$work/rootfs.tar") / 1048576))" "${hash:0:16}"

# Only the imported image itself counts (one layer, this hash). Images committed from containers of
# this image inherit its labels, so a label search alone could pick an environment's private image.
existing=""
current=$(docker image inspect -f "{{.Id}} {{index .Config.Labels \"$HASH_LABEL\"}} {{len .RootFS.Layers}}" "$IMAGE:${TAGS[0]}" 2>/dev/null || true)
if [ "${current#* }" = "$hash 1" ]; then existing=${current%% *}; fi
if [ -n "$existing" ] && [ "$force" = 0 ]; then
  step "image with this content hash exists (${existing:7:12}): not importing (--force to rebuild)"
  id=$existing
else
  step "importing image $IMAGE:${TAGS[0]}"
  args=()
  for c in "${changes[@]}" "LABEL $HASH_LABEL=$hash"; do args+=(--change "$c"); done
  id=$(docker import "${args[@]}" --message "built by scripts/build-test-image.sh" "$work/rootfs.tar")
fi
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE:${TAGS[0]}" 2>/dev/null || true)
for tag in "${TAGS[@]}"; do docker tag "$id" "$IMAGE:$tag"; done
if [ -n "$previous" ] && [ "$previous" != "$id" ]; then
  # The replaced image is now untagged; containers still using it keep it (rmi fails then).
  docker rmi "$previous" >/dev/null 2>&1 && step "removed the replaced image ${previous:7:12}" || true
fi

size=$(docker image inspect -f '{{.Size}}' "$id")
elapsed=$(awk -v s="$start_s" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')
step "done: ${TAGS[*]/#/$IMAGE:} (${id:7:12}), $((size / 1048576)) MiB, ${elapsed}s"
