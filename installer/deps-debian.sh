#!/usr/bin/env bash
# Installs every build and test dependency of MCW from Debian 12, and only what is
# missing: with everything present it returns at once (no apt call).
set -euo pipefail

pkgs=(
  cmake ninja-build g++ pkg-config ccache
  qt6-base-dev qt6-base-dev-tools qt6-svg-dev libgl-dev
  libimgui-dev libvulkan-dev glslang-tools glslc spirv-tools
  mesa-vulkan-drivers vulkan-tools
  libtbb-dev libsqlite3-dev libgtest-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev
  xvfb xauth poppler-utils fortunes fonts-dejavu-core
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
