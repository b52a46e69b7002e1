#!/usr/bin/env bash
# Runs the edge runtime on an emulated arm64 Debian bookworm (qemu-user-static + debootstrap):
#   1. the int8 model on identical int8 inputs (every window of samples/*.flac) must give
#      bit-identical outputs on x86_64 and on emulated Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5),
#      with LiteRT's reference kernels and with its default (XNNPACK) kernels; and
#      `classify` on samples/*.flac must give the same labels, scores within four output steps
#      (the float front end may round an input value across a quantisation step; parity.py);
#   2. `bench` must complete (its timings are emulated: NOT representative of a real board).
#
# Usage: sudo benchmarks/aarch64/run.sh [--fresh]
#   EDGE_DETECT_ARM64_ROOTFS  rootfs location (default /var/tmp/edge-detect-arm64; keep it
#                             outside the repo). --fresh deletes it and bootstraps again.
#   EDGE_DETECT_ARM64_REPORT  where the emulated bench report goes
#                             (default benchmarks/results/qemu-aarch64-emulated.json)
# Exit: 0 passed or skipped (not root, no network: a message says why), 1 check failed,
#       2 setup failed.
# First run about 6-10 min (debootstrap of a minbase rootfs, pip wheels); later runs reuse it.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ROOTFS="${EDGE_DETECT_ARM64_ROOTFS:-/var/tmp/edge-detect-arm64}"
REPORT="${EDGE_DETECT_ARM64_REPORT:-$REPO/benchmarks/results/qemu-aarch64-emulated.json}"
MIRROR="${EDGE_DETECT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
HOST_PYTHON="${EDGE_DETECT_HOST_PYTHON:-$REPO/.venv/bin/python}"

log() { echo "aarch64: $*" >&2; }
skip() { log "SKIP: $*"; exit 0; }
die() { log "FAILED: $*"; exit "${2:-2}"; }

if [[ "${1:-}" == "--fresh" ]]; then FRESH=1; else FRESH=0; fi
[[ "$(id -u)" == 0 ]] || skip "needs root (debootstrap, chroot, mounts); run with sudo"
[[ "$(uname -m)" == x86_64 || "$(uname -m)" == aarch64 ]] || skip "unsupported host $(uname -m)"
case "$ROOTFS" in "$REPO"|"$REPO"/*) die "rootfs must live outside the repo ($ROOTFS)";; esac
[[ -x "$HOST_PYTHON" ]] || HOST_PYTHON="$(command -v python3)"

if ! curl -fsS -o /dev/null --max-time 15 "$MIRROR/dists/$SUITE/Release" \
    || ! curl -fsS -o /dev/null --max-time 15 https://pypi.org/simple/ai-edge-litert/; then
  skip "no network (need $MIRROR and pypi.org)"
fi

# --- host tools: qemu-user-static registered with binfmt_misc, debootstrap ---------------------
if [[ "$(uname -m)" != aarch64 ]]; then
  if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null \
      || ! command -v update-binfmts >/dev/null; then
    log "installing qemu-user-static debootstrap binfmt-support"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        qemu-user-static debootstrap binfmt-support) >&2 \
      || skip "cannot install qemu-user-static debootstrap binfmt-support with apt-get"
  fi
  # An unprivileged container cannot do this: that is a missing capability, not a failure.
  [[ -e /proc/sys/fs/binfmt_misc/register ]] \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || skip "cannot mount binfmt_misc (unprivileged container?)"
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 \
    || skip "cannot register qemu-aarch64 with binfmt_misc"
  QEMU_VERSION="$(qemu-aarch64-static --version | head -1)"
else
  QEMU_VERSION="native"
fi

# --- rootfs ------------------------------------------------------------------------------------
if [[ "$FRESH" == 1 && -d "$ROOTFS" ]]; then
  log "removing $ROOTFS"; rm -rf --one-file-system "$ROOTFS"
fi
if [[ ! -e "$ROOTFS/.edge-detect-debootstrap-done" ]]; then
  log "debootstrap arm64 $SUITE into $ROOTFS (several minutes)"
  rm -rf --one-file-system "$ROOTFS"
  mkdir -p "$ROOTFS"
  debootstrap --arch=arm64 --variant=minbase \
      --include=python3.11,ca-certificates,libsndfile1 \
      "$SUITE" "$ROOTFS" "$MIRROR" >&2 || die "debootstrap failed (log: $ROOTFS/debootstrap/debootstrap.log)"
  touch "$ROOTFS/.edge-detect-debootstrap-done"
fi

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || true; done
}
trap cleanup EXIT
bind() { mount "$@"; MOUNTS+=("${!#}"); }

bind -t proc proc "$ROOTFS/proc"
# LiteRT's cpuinfo library aborts under qemu-user when /proc/cpuinfo describes the x86 host.
bind --bind "$REPO/benchmarks/aarch64/cpuinfo-cortex-a72.txt" "$ROOTFS/proc/cpuinfo"
bind --bind /dev "$ROOTFS/dev"
# cpuinfo reads the processor lists from sysfs (present/possible); without it, it logs errors.
bind --bind /sys "$ROOTFS/sys"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# This host may reach PyPI through a TLS-intercepting proxy: trust what the host trusts.
HOST_CA="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
[[ -f "$HOST_CA" ]] && cp "$HOST_CA" "$ROOTFS/etc/edge-detect-host-ca.crt"

# Only http(s) indexes make sense inside the rootfs (file:// ones are host paths).
PIP_ENV=(PIP_CERT=/etc/edge-detect-host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1
         PIP_DEFAULT_TIMEOUT=180 PIP_NO_CACHE_DIR=1)
for key in index-url extra-index-url; do
  var="PIP_${key^^}"; var="${var//-/_}"
  value="${!var:-$("$HOST_PYTHON" -m pip config get "global.$key" 2>/dev/null || true)}"
  urls=""
  for url in $value; do [[ "$url" == http* ]] && urls+="$url "; done
  [[ -n "$urls" ]] && PIP_ENV+=("$var=${urls% }")
done

in_root() { chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "${PIP_ENV[@]}" "$@"; }

# debootstrap cannot resolve the virtual python3.11-distutils that python3.11-venv needs: apt can.
if [[ ! -e "$ROOTFS/.edge-detect-apt-done" ]]; then
  log "apt-get install python3.11-venv in the rootfs"
  in_root apt-get install -y -qq --no-install-recommends python3.11-venv >&2 \
    || die "apt-get install python3.11-venv in the rootfs failed"
  touch "$ROOTFS/.edge-detect-apt-done"
fi

# Copy only what the board runs; the venv and caches stay on the host.
rm -rf "$ROOTFS/src" && mkdir -p "$ROOTFS/src"
tar -C "$REPO" -cf - pyproject.toml edge_runtime samples | tar -C "$ROOTFS/src" -xf -
find "$ROOTFS/src" -name __pycache__ -prune -exec rm -rf {} +

# Pin numpy and LiteRT to the host's versions so both runs use the same kernels' versions.
REQS="$("$HOST_PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import re, sys, tomllib
from importlib.metadata import PackageNotFoundError, version
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
for dep in deps:
    name = re.split(r"[ ;<>=!~\[]", dep, maxsplit=1)[0]
    try:
        print(f"{name}=={version(name)}" if name in ("numpy", "ai-edge-litert") else name)
    except PackageNotFoundError:
        print(name)
EOF
)"
REQ_HASH="$(echo "$REQS" | sha256sum | cut -c1-16)"
VENV=/opt/edge-venv
if [[ ! -e "$ROOTFS$VENV/.reqs-$REQ_HASH" ]]; then
  log "pip install in the rootfs: $(echo $REQS)"
  rm -rf "$ROOTFS$VENV"
  in_root python3.11 -m venv "$VENV" || die "venv creation failed"
  # shellcheck disable=SC2086
  in_root "$VENV/bin/python3.11" -m pip install -q $REQS >&2 || die "pip install in the rootfs failed"
  touch "$ROOTFS$VENV/.reqs-$REQ_HASH"
fi
# The venv's python symlink would resolve to the host's x86 python outside the chroot: always
# name the rootfs interpreter explicitly.
PY="$VENV/bin/python3.11"
in_root "$PY" -c "import platform; assert platform.machine() == 'aarch64', platform.machine()" \
  || die "rootfs python is not aarch64"

# --- check 1: same scores as the host ---------------------------------------------------------
TMP="$(mktemp -d)"; trap 'cleanup; rm -rf "$TMP"' EXIT
SAMPLES=(samples/*.flac)
# qemu's default "max" CPU advertises SVE/SVE2, and XNNPACK's kernels for it return garbage
# under qemu 7.2 (every window scores the same). The boards we target have no SVE: emulate the
# Pi 4's Cortex-A72, which also matches the bind-mounted /proc/cpuinfo.
QEMU_CPU_MODEL="${EDGE_DETECT_QEMU_CPU:-cortex-a72}"
arm() { QEMU_CPU="$QEMU_CPU_MODEL" chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin \
    LC_ALL=C.UTF-8 QEMU_CPU="$QEMU_CPU_MODEL" PYTHONPATH=/src sh -c "cd /src && $*"; }
log "classify on the host ($(uname -m))"
(cd "$REPO" && "$HOST_PYTHON" -m edge_runtime classify --json "${SAMPLES[@]}" > "$TMP/host.jsonl") \
  || [[ $? == 1 ]] || die "host classify failed"
log "classify in the arm64 rootfs ($QEMU_VERSION)"
start=$(date +%s)
arm "$PY -m edge_runtime classify --json ${SAMPLES[*]}" > "$TMP/arm64.jsonl" \
  || [[ $? == 1 ]] || die "arm64 classify failed"
log "arm64 classify took $(( $(date +%s) - start )) s (emulated)"
# The same int8 tensors on both sides: separates kernel arithmetic from float front-end rounding.
(cd "$REPO" && "$HOST_PYTHON" benchmarks/aarch64/parity.py dump "$TMP/inputs.npz") \
  || die "parity dump failed"
cp "$TMP/inputs.npz" "$ROOTFS/tmp/inputs.npz"
cp "$REPO/benchmarks/aarch64/parity.py" "$ROOTFS/tmp/parity.py"
(cd "$REPO" && "$HOST_PYTHON" benchmarks/aarch64/parity.py score "$TMP/inputs.npz" \
  2>/dev/null > "$TMP/host_raw.json") || die "host parity score failed"
arm "$PY /tmp/parity.py score /tmp/inputs.npz" 2>/dev/null > "$TMP/arm_raw.json" \
  || die "arm64 parity score failed"
log "same int8 inputs, emulated $QEMU_CPU_MODEL:"
"$HOST_PYTHON" "$REPO/benchmarks/aarch64/parity.py" compare "$TMP/host_raw.json" \
  "$TMP/arm_raw.json" "$REPO/edge_runtime/models/edge_detect.json" --classify "$TMP/host.jsonl" \
  "$TMP/arm64.jsonl" || { log "FAILED: x86_64 and aarch64 disagree"; exit 1; }
# The Pi 5's Cortex-A76 has the dot-product extension: XNNPACK takes other int8 kernels there.
QEMU_CPU_MODEL=cortex-a76 arm "$PY /tmp/parity.py score /tmp/inputs.npz" 2>/dev/null \
  > "$TMP/arm_raw_a76.json" || die "arm64 parity score (cortex-a76) failed"
log "same int8 inputs, emulated cortex-a76:"
"$HOST_PYTHON" "$REPO/benchmarks/aarch64/parity.py" compare "$TMP/host_raw.json" \
  "$TMP/arm_raw_a76.json" "$REPO/edge_runtime/models/edge_detect.json" \
  || { log "FAILED: x86_64 and aarch64 (cortex-a76) disagree"; exit 1; }

# --- check 2: bench completes -----------------------------------------------------------------
log "bench in the arm64 rootfs (emulated: timings NOT representative)"
start=$(date +%s)
arm "$PY -m edge_runtime bench --warmup 3 --repeat 20 --stream-seconds 20 --threads 2 \
      --cold-runs 1 --note 'EMULATED: qemu-user ($QEMU_VERSION) on $(uname -m); /proc/cpuinfo is a bind-mounted Cortex-A72 text; timings are not representative of a board' \
      --json /tmp/bench.json" || die "arm64 bench failed" 1
mkdir -p "$(dirname "$REPORT")"
cp "$ROOTFS/tmp/bench.json" "$REPORT"
log "bench took $(( $(date +%s) - start )) s; report: $REPORT"
log "PASSED"
