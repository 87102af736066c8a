#!/usr/bin/env bash
# Installs an already-built qorus under PREFIX (no CMake needed):
#
#   PREFIX/include/{qorus.h,qorus_types.h}
#   PREFIX/lib/libqorus.so.X.Y.Z, libqorus.so.X -> libqorus.so.X.Y.Z, libqorus.so -> libqorus.so.X
#   PREFIX/lib/libqorus.a
#   PREFIX/lib/cmake/qorus/{qorusConfig.cmake,qorusConfigVersion.cmake}
#   PREFIX/lib/pkgconfig/qorus.pc
#
# usage: scripts/install.sh [--profile release|debug] [--lib-dir DIR] PREFIX
#   --profile  take the libraries from target/<profile> (default: release; honours CARGO_TARGET_DIR)
#   --lib-dir  take them from DIR instead (e.g. target/release/deps, where `cargo test` leaves them)
#   DESTDIR    (environment) stage the files under $DESTDIR$PREFIX; qorus.pc still names PREFIX
#
# Build first: `cargo build --release` (or `cargo build` for --profile debug).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
profile=release
lib_dir=
prefix=

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --profile) [ $# -ge 2 ] || usage; profile=$2; shift 2 ;;
        --profile=*) profile=${1#*=}; shift ;;
        --lib-dir) [ $# -ge 2 ] || usage; lib_dir=$2; shift 2 ;;
        --lib-dir=*) lib_dir=${1#*=}; shift ;;
        -h|--help) usage ;;
        -*) echo "install.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$prefix" ] || usage; prefix=$1; shift ;;
    esac
done
[ -n "$prefix" ] || usage
case "$profile" in
    release|debug) ;;
    *) echo "install.sh: --profile must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
if [ -z "$lib_dir" ]; then
    lib_dir="${CARGO_TARGET_DIR:-$root/target}/$profile"
fi
for f in libqorus.so libqorus.a; do
    if [ ! -f "$lib_dir/$f" ]; then
        flag=$([ "$profile" = release ] && echo " --release" || true)
        echo "install.sh: $lib_dir/$f not found; build it first with: cargo build$flag" >&2
        exit 1
    fi
done

# PREFIX as an absolute path (it is written into qorus.pc).
case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/

version=$(sed -n 's/^version *= *"\([0-9][0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -1)
[ -n "$version" ] || { echo "install.sh: no version in Cargo.toml" >&2; exit 1; }
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}

# System libraries the Rust standard library inside libqorus.a needs.
static_deps=(pthread dl m rt)
static_deps_cmake=$(IFS=';'; echo "${static_deps[*]}")
static_deps_pc=$(printf -- '-l%s ' "${static_deps[@]}")
static_deps_pc=${static_deps_pc% }

dest="${DESTDIR:-}$prefix"
inc="$dest/include"
lib="$dest/lib"
cmake_dir="$lib/cmake/qorus"
pc_dir="$lib/pkgconfig"
mkdir -p "$inc" "$lib" "$cmake_dir" "$pc_dir"

install -m 644 "$root/include/qorus.h" "$root/include/qorus_types.h" "$inc/"
install -m 755 "$lib_dir/libqorus.so" "$lib/libqorus.so.$version"
ln -sfn "libqorus.so.$version" "$lib/libqorus.so.$major"
ln -sfn "libqorus.so.$major" "$lib/libqorus.so"
install -m 644 "$lib_dir/libqorus.a" "$lib/libqorus.a"

# Escapes a value for the replacement side of a sed s||| command.
esc() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
# In qorus.pc a space inside a path is written as "\ " (pkg-config splits flags at spaces).
prefix_sed=$(esc "${prefix// /\\ }")

subst() {
    sed -e "s|@QORUS_VERSION@|$version|g" \
        -e "s|@QORUS_VERSION_MAJOR@|$major|g" \
        -e "s|@QORUS_VERSION_MINOR@|$minor|g" \
        -e "s|@QORUS_SOVERSION@|$major|g" \
        -e "s|@QORUS_STATIC_DEPS_CMAKE@|$static_deps_cmake|g" \
        -e "s|@QORUS_STATIC_DEPS_PC@|$static_deps_pc|g" \
        -e "s|@PREFIX@|$prefix_sed|g" \
        "$1" >"$2"
    chmod 644 "$2"
}
subst "$root/cmake/qorusConfig.cmake.in" "$cmake_dir/qorusConfig.cmake"
subst "$root/cmake/qorusConfigVersion.cmake.in" "$cmake_dir/qorusConfigVersion.cmake"
subst "$root/cmake/qorus.pc.in" "$pc_dir/qorus.pc"

echo "installed qorus $version ($lib_dir) under $dest" >&2
