#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only when missing.
# Usage: scripts/deps.sh GROUP...   (build, test, run, fuzz, bench, memcheck, man, openapi, hosts)
# A package written PACKAGE:COMMAND counts as present when COMMAND is on the
# PATH too: Node.js from another source (such as one that bundles npm) must
# not be replaced by Debian's.
set -euo pipefail

declare -A group=(
    [build]="gcc make pkg-config libfcgi-dev libpq-dev nettle-dev"
    [run]="postgresql-15 postgresql-client-15 nginx curl procps pgbouncer"
    [test]="libcmocka-dev python3-pytest python3-httpx python3-psycopg python3-pydantic python3-jsonschema python3-yaml clang libclang-rt-14-dev libjson-c-dev systemd iproute2 help2man man-db groff-base chromium"
    [fuzz]="clang libclang-rt-14-dev libjson-c-dev"
    [memcheck]="valgrind"
    [man]="help2man man-db groff-base"
    # make test-hosts: the FastCGI hosts besides nginx (tests/integration/hosts.py)
    [hosts]="apache2 libapache2-mod-fcgid lighttpd lighttpd-modules-lua fcgiwrap"
    [bench]="wrk postgresql-15 procps gnuplot-nox nodejs:node npm:npm"
    [openapi]="nodejs:node npm:npm python3-pytest python3-yaml python3-jsonschema"
)

wanted=()
for g in "$@"; do
    [[ -v group[$g] ]] || { echo "deps.sh: unknown group $g" >&2; exit 2; }
    for p in ${group[$g]}; do
        if [[ $p == *:* ]]; then
            command -v "${p#*:}" >/dev/null && continue
            p=${p%%:*}
        fi
        # A package counts as present only when dpkg says it is installed.
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || wanted+=("$p")
    done
done
[ ${#wanted[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages: ${wanted[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "deps.sh: installing ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
# Several make targets may install at once (parallel jobs, a second checkout):
# wait for dpkg's lock rather than fail on it.
apt_wait=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_wait[@]}" update -qq
apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
