#!/usr/bin/env bash
# The tests talk to a real Prometheus, Alertmanager and node_exporter, and check the
# compose file with docker-compose and the systemd unit with systemd-analyze; the
# benchmark times scrapes with curl. test/e2e/compose.test.ts builds Debian images with
# debootstrap, runs the stack with dockerd and docker-compose inside a network namespace
# (ip, nsenter) and reaches it with curl there. The web-service, access-log and door
# tests run a real nginx, redis-server, PostgreSQL (a throwaway cluster), openssl-made
# certificates and bcrypt hashes (htpasswd); the benches run prometheus-nginx-exporter,
# prometheus-blackbox-exporter and mtail beside lookout. The containers test and bench
# import a busybox-static image into a private dockerd; the bench times docker stats
# with /usr/bin/time.
# Installs the Debian packages that bring them when run as root; otherwise stops at once
# with the exact command to run. Never skips silently.
set -euo pipefail

# command → Debian package
declare -A NEED=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [prometheus-node-exporter]=prometheus-node-exporter
  [docker-compose]=docker-compose
  [curl]=curl
  [systemd-analyze]=systemd
  [dockerd]=docker.io
  [docker]=docker.io
  [debootstrap]=debootstrap
  [ip]=iproute2
  [nsenter]=util-linux
  [mount]=mount
  [nginx]=nginx-light
  [openssl]=openssl
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [/usr/lib/postgresql/15/bin/initdb]=postgresql
  [psql]=postgresql-client
  [prometheus-nginx-exporter]=prometheus-nginx-exporter
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  [mtail]=mtail
  [htpasswd]=apache2-utils
  [victoria-metrics]=victoria-metrics
  [vmalert]=victoria-metrics
  # npm ci builds native/timex (the timex collector's adjtimex addon) with node-gyp;
  # test/timex.test.ts and the soaks read the clock state independently with busybox.
  [cc]=gcc
  [g++]=g++
  [make]=make
  [python3]=python3
  [busybox]=busybox-static
  [setpriv]=util-linux
  [/usr/bin/time]=time
  # test/podman.test.ts: the containers collector on Podman's Docker-compatible socket.
  [podman]=podman
)

missing=()
for cmd in "${!NEED[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${NEED[$cmd]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if [ "$(id -u)" -ne 0 ]; then
  echo "lookout tests need these Debian packages: $pkgs" >&2
  echo "install them with:  sudo apt-get update && sudo apt-get install -y $pkgs" >&2
  exit 1
fi
echo "installing Debian packages the tests need: $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's postinst scripts try to start services and fail quietly without systemd; the
# tests start their own instances.
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
