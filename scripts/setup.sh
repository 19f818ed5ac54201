#!/usr/bin/env bash
# Installs what hwnas needs at run time and says what it did. Idempotent: a second run
# installs nothing and says so. Needs no network beyond the package registries (PyPI for
# the ONNX Runtime wheel, Debian's archive for the Vulkan CPU driver).
#
# Usage: source scripts/setup.sh   (exports ORT_DYLIB_PATH and XDG_RUNTIME_DIR)
#    or: bash scripts/setup.sh     (prints what it found or installed)

HWNAS_ORT_VERSION="1.31.1"
hwnas_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hwnas_cache="${HWNAS_CACHE_DIR:-$hwnas_root/.cache}"

hwnas_say() { printf 'setup: %s\n' "$*" >&2; }

# ONNX Runtime: the shared library from the pinned `onnxruntime` wheel, unpacked into the
# project cache (ignored by git). The hwnas binary finds it there at run time.
hwnas_setup_ort() {
    local dir="$hwnas_cache/onnxruntime-$HWNAS_ORT_VERSION"
    local lib="$dir/libonnxruntime.so"
    if [ -f "$lib" ]; then
        hwnas_say "ONNX Runtime $HWNAS_ORT_VERSION already in $dir (nothing installed)"
    else
        hwnas_say "installing ONNX Runtime $HWNAS_ORT_VERSION from the onnxruntime wheel (pip) into $dir"
        local tmp
        tmp="$(mktemp -d)"
        if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
            --target "$tmp" "onnxruntime==$HWNAS_ORT_VERSION" >&2; then
            hwnas_say "pip could not fetch onnxruntime==$HWNAS_ORT_VERSION; check that PyPI is reachable"
            rm -rf "$tmp"
            return 1
        fi
        mkdir -p "$dir"
        local found
        found="$(ls "$tmp"/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | head -n 1)"
        if [ -z "$found" ]; then
            hwnas_say "the onnxruntime wheel carried no libonnxruntime.so (unsupported platform?)"
            rm -rf "$tmp"
            return 1
        fi
        cp "$found" "$lib.partial" && mv "$lib.partial" "$lib"
        echo "$HWNAS_ORT_VERSION" > "$dir/VERSION"
        rm -rf "$tmp"
        hwnas_say "ONNX Runtime installed: $lib"
    fi
    export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$lib}"
}

# True when the Vulkan loader finds at least one driver manifest.
hwnas_has_vulkan_driver() {
    local d
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        if ls "$d"/*.json >/dev/null 2>&1; then return 0; fi
    done
    [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

# The Vulkan CPU driver (Mesa lavapipe) where no Vulkan driver exists and apt is usable.
# On Debian bookworm, Mesa from bookworm-backports is preferred (about twice as fast); the
# backports suite is added on the same mirror the machine already uses.
hwnas_setup_vulkan() {
    if hwnas_has_vulkan_driver; then
        hwnas_say "a Vulkan driver is present (nothing installed)"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
        hwnas_say "no Vulkan driver and apt-get is not usable here: GPU kernels fall back to the CPU backend"
        hwnas_say "to enable them, install Mesa's Vulkan drivers (Debian: apt-get install mesa-vulkan-drivers)"
        return 0
    fi
    hwnas_say "no Vulkan driver found: installing Mesa's lavapipe (mesa-vulkan-drivers) with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    local codename=""
    codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
    local backports=""
    if [ "$codename" = "bookworm" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
        local uri
        uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
        if [ -n "$uri" ]; then
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$uri" > /etc/apt/sources.list.d/hwnas-backports.sources
            backports="bookworm-backports"
        fi
    fi
    apt-get update -qq >&2 || true
    if [ -n "$backports" ] && apt-get install -y -qq -t "$backports" mesa-vulkan-drivers libvulkan1 >&2; then
        hwnas_say "installed mesa-vulkan-drivers from $backports"
    elif apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >&2; then
        hwnas_say "installed mesa-vulkan-drivers"
    else
        hwnas_say "apt-get could not install mesa-vulkan-drivers: GPU kernels fall back to the CPU backend"
    fi
}

# Fashion-MNIST, the image set one-shot searches train on here: Debian's package, unless
# the shared data beside the project (or the package) already provides it.
hwnas_setup_fashion_mnist() {
    local shared
    shared="$(cd "$hwnas_root/.." && pwd)/shared/data/image-datasets/fashion-mnist"
    if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
        [ -f "$shared/train-images-idx3-ubyte.gz" ] || [ -n "${HWNAS_DATA_DIR:-}" ]; then
        hwnas_say "Fashion-MNIST is present (nothing installed)"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
        hwnas_say "Fashion-MNIST is absent and apt-get is not usable: one-shot searches need --data"
        return 0
    fi
    hwnas_say "installing Fashion-MNIST (Debian's dataset-fashion-mnist) with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2 ||
        { apt-get update -qq >&2 || true; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2; } ||
        hwnas_say "apt-get could not install dataset-fashion-mnist: one-shot searches need --data"
}

# Mesa warns on every start when XDG_RUNTIME_DIR is unset; give it a private directory.
hwnas_setup_runtime_dir() {
    if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR:-}" ]; then
        export XDG_RUNTIME_DIR="$hwnas_cache/xdg-runtime"
        mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
    fi
}

hwnas_setup_all() {
    mkdir -p "$hwnas_cache"
    hwnas_setup_ort || return 1
    hwnas_setup_vulkan
    hwnas_setup_fashion_mnist
    hwnas_setup_runtime_dir
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    hwnas_setup_all
fi
