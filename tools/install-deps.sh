#!/bin/sh
# install-deps.sh: installs, with apt-get, what building (and with --test,
# testing) egress needs and is missing. Idempotent: when nothing is missing
# it touches neither the network nor apt's lists.
#
#   tools/install-deps.sh [--test]
#
# Run it as root. As another user it only reports what is missing and exits
# 1 when something is.
set -eu

usage() {
	echo "usage: $0 [--test]" >&2
	echo "  installs the build dependencies; --test adds what the tests use" >&2
}

want_test=0
for arg in "$@"; do
	case $arg in
	--test) want_test=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage; exit 2 ;;
	esac
done

# Debian packages, checked by their dpkg status.
# iproute2, nftables, util-linux: egress-run --isolate; uidmap (newuidmap,
# newgidmap): --isolate as an ordinary user maps the user's subordinate ids,
# so that CMD's children can change user (without it, only uid 0 inside)
build_pkgs="build-essential pkg-config libinih-dev uthash-dev check clang iproute2 nftables util-linux uidmap"
# On amd64, the shim is built for i386 programs too (make's SHIM32): gcc -m32
# needs Debian's multilib (libgcc and crt files, and the i386 libc headers).
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
	build_pkgs="$build_pkgs gcc-multilib libc6-dev-i386"
fi
# libclang-rt-dev: libFuzzer for make fuzz; busybox-static: t_isolate;
# dpkg-dev (dpkg-scanpackages): t_apt's repository; python3.11 and
# libpython3.11-testsuite: t_cpython runs Debian's CPython test modules with
# /usr/bin/python3.11 (a python3 of its own may lack the test package)
test_pkgs="tinyproxy microsocks dante-server libclang-rt-dev busybox-static dpkg-dev python3.11 libpython3.11-testsuite"

# Commands that may also come from outside Debian (pyenv's python3, a node
# of its own): the Debian package is installed only when the command is
# missing.  Format: command:package
build_cmds="curl:curl python3:python3"
test_cmds="node:nodejs"

missing=""

pkg_installed() {
	# dpkg-query fails for a package it never heard of; that is "missing".
	st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	case $st in
	*" installed") return 0 ;;
	*) return 1 ;;
	esac
}

check_pkgs() {
	for p in $1; do
		pkg_installed "$p" || missing="$missing $p"
	done
}

check_cmds() {
	for pair in $1; do
		c=${pair%%:*}
		p=${pair#*:}
		command -v "$c" >/dev/null 2>&1 || missing="$missing $p"
	done
}

check_pkgs "$build_pkgs"
check_cmds "$build_cmds"
if [ "$want_test" = 1 ]; then
	check_pkgs "$test_pkgs"
	check_cmds "$test_cmds"
fi

if [ -z "$missing" ]; then
	echo "install-deps: all dependencies present" >&2
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing:$missing" >&2
	echo "install-deps: run it as root, or: apt-get install$missing" >&2
	exit 1
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
# $missing is a list of package names; word splitting is intended.
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing </dev/null
echo "install-deps: done" >&2
