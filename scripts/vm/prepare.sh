#!/usr/bin/env bash
# Prepares a kernel and an initramfs to boot the host's own root file system on another Linux
# kernel under QEMU (crates/test-support/src/vm.rs boots them). Run as root; idempotent: what
# is cached already is reused.
#
#   scripts/vm/prepare.sh [6.1|5.15]
#
# 6.1:  Debian 12's current kernel, `apt-get download linux-image-6.1.0-<N>-amd64` (the
#       package linux-image-amd64 depends on), or TEST_VM_PACKAGE=linux-image-6.1.0-<N>-amd64.
# 5.15: Ubuntu 22.04's kernel (linux-image + linux-modules 5.15.0-25-generic) over HTTP from
#       archive.ubuntu.com, or TEST_VM_UBUNTU_VERSION=5.15.0-<N>.<M> (with ABI N).
#
# Cache: $TEST_VM_CACHE (default /var/cache/tapline-vm)/<kernel release>/ holds vmlinuz,
# initrd.gz and the .debs. The last lines on stdout name them:
#   release=<uname -r>  kernel=<path>  initrd=<path>
# The initramfs's /init loads the virtio, 9p and test modules (veth, sch_ingress, cls_bpf...),
# mounts the host root read-only over 9p (mount tag `hostroot`) and the per-run directory
# read-write (tag `vmrun`, at /tmp/vm in the chroot), chroots and runs /tmp/vm/run.sh, prints
# `TAPLINE-VM-EXIT <status>` and powers off.
set -euo pipefail
series=${1:-6.1}
cache=${TEST_VM_CACHE:-/var/cache/tapline-vm}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache/debs"

for tool in qemu-system-x86_64 busybox cpio dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "prepare.sh: $tool missing (scripts/install-test-deps.sh installs it)" >&2; exit 3; }
done
busybox_bin=$(command -v busybox)
if ldd "$busybox_bin" >/dev/null 2>&1; then
  echo "prepare.sh: $busybox_bin is not static (apt-get install busybox-static)" >&2
  exit 3
fi

debs=()
case "$series" in
  6.1)
    pkg=${TEST_VM_PACKAGE:-}
    if [[ -z $pkg ]]; then
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\./ {print $2; exit}')
    fi
    if [[ -z $pkg ]]; then
      echo "prepare.sh: apt knows no linux-image-6.1.0-*-amd64 (is bookworm in the apt sources? apt-get update?)" >&2
      exit 3
    fi
    deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | tail -1 || true)
    if [[ -z $deb ]]; then
      (cd "$cache/debs" && apt-get download -q "$pkg" >&2) || {
        echo "prepare.sh: apt-get download $pkg failed" >&2; exit 3; }
      deb=$(ls "$cache/debs/${pkg}_"*.deb | tail -1)
    fi
    debs=("$deb")
    ;;
  5.15)
    v=${TEST_VM_UBUNTU_VERSION:-5.15.0-25.25}
    abi=${v%.*}
    base=http://archive.ubuntu.com/ubuntu/pool/main/l
    for url in "$base/linux-signed/linux-image-$abi-generic_${v}_amd64.deb" \
               "$base/linux/linux-modules-$abi-generic_${v}_amd64.deb"; do
      f="$cache/debs/$(basename "$url")"
      if [[ ! -s $f ]]; then
        curl -fsS -m 600 -o "$f.part" "$url" || { echo "prepare.sh: cannot fetch $url" >&2; rm -f "$f.part"; exit 3; }
        mv "$f.part" "$f"
      fi
      debs+=("$f")
    done
    ;;
  *) echo "prepare.sh: unknown kernel series $series (6.1 or 5.15)" >&2; exit 2 ;;
esac

# Unpack into a staging directory named after the newest deb, then find the release.
stage="$cache/stage-$(basename "${debs[0]}" .deb)"
if [[ ! -d $stage/lib/modules ]]; then
  rm -rf "$stage.tmp" && mkdir -p "$stage.tmp"
  for d in "${debs[@]}"; do dpkg-deb -x "$d" "$stage.tmp"; done
  rm -rf "$stage" && mv "$stage.tmp" "$stage"
fi
release=$(ls "$stage/lib/modules" | head -1)
vmlinuz=$(ls "$stage/boot/vmlinuz-"* | head -1)
mods="$stage/lib/modules/$release"
out="$cache/$release"
mkdir -p "$out"

# Modules wanted, in load order; their dependencies come from modules.dep, built-ins are skipped.
wanted=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
        9pnet 9pnet_virtio netfs fscache 9p
        veth sch_ingress cls_bpf act_bpf sch_tbf ipv6)
if [[ ! -f $mods/modules.dep ]]; then
  depmod -b "$stage" "$release"
fi
declare -A seen=()
order=()
add_module() {  # $1: path relative to $mods
  local rel=$1 dep
  [[ -n ${seen[$rel]:-} ]] && return
  seen[$rel]=1
  for dep in $(awk -v m="$rel:" '$1 == m { for (i = NF; i > 1; i--) print $i }' "$mods/modules.dep"); do
    add_module "$dep"
  done
  order+=("$rel")
}
for m in "${wanted[@]}"; do
  rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$mods/modules.dep")
  if [[ -n $rel ]]; then
    add_module "$rel"
  elif ! grep -qE "/$m\.ko" "$mods/modules.builtin" 2>/dev/null; then
    echo "prepare.sh: module $m neither in modules.dep nor built in for $release; skipped" >&2
  fi
done

# Rebuild the initramfs when the init script, the module list or busybox changed.
key=$(cat "$here/init" "$busybox_bin" <(printf '%s\n' "${order[@]}") | sha256sum | cut -c1-16)
if [[ ! -s $out/initrd.gz || $(cat "$out/initrd.key" 2>/dev/null) != "$key" ]]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,dev,proc,sys,mnt,modules}
  cp "$busybox_bin" "$root/bin/busybox"
  cp "$here/init" "$root/init"
  chmod +x "$root/init"
  : > "$root/modules/order"
  for rel in "${order[@]}"; do
    name=$(basename "$rel")
    case "$name" in
      *.ko.xz) xz -dc "$mods/$rel" > "$root/modules/${name%.xz}"; name=${name%.xz} ;;
      *.ko.zst) zstd -qdc "$mods/$rel" > "$root/modules/${name%.zst}"; name=${name%.zst} ;;
      *) cp "$mods/$rel" "$root/modules/$name" ;;
    esac
    echo "$name" >> "$root/modules/order"
  done
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.gz.tmp"
  mv "$out/initrd.gz.tmp" "$out/initrd.gz"
  echo "$key" > "$out/initrd.key"
fi
cp -u "$vmlinuz" "$out/vmlinuz"
echo "release=$release"
echo "kernel=$out/vmlinuz"
echo "initrd=$out/initrd.gz"
