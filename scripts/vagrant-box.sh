#!/usr/bin/env bash
# What the top-level Vagrantfile boots, built on this machine (the public box host is not
# needed): the box meshbench/debian12 (mmdebstrap → ext4 → qcow2 → libvirt .box) and, per
# kernel of the matrix, an initrd that mounts the box's disk. Nothing here runs unless asked.
#
#   scripts/vagrant-box.sh box [--minimal] [--out DIR] [--no-add]
#       mmdebstrap a Debian 12 root from the Debian mirror apt already uses, with everything
#       scripts/setup.sh installs (the VMs have no route out) plus this host's Node.js; as root.
#       --minimal leaves out setup.sh's packages (a quick box for trying the boot path).
#       Adds it with `vagrant box add` unless --no-add; the .box is kept in --out (default ~/.cache/meshbench/boxes).
#   scripts/vagrant-box.sh kernel <name>
#       fetch the kernel into the meshbench cache (as `--kernel` does) and write
#       <cache>/<name>/vagrant-initrd.gz: busybox-static + virtio/ext4 modules, mounts /dev/vda.
#
# See docs/vagrant.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf 'vagrant-box: %s\n' "$*" >&2; }
die() { printf 'vagrant-box: %s\n' "$1" >&2; exit "${2:-3}"; }
usage() { sed -n '6,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

SUITE=bookworm
BOX_NAME=meshbench/debian12
DISK_GB=8

# The Debian mirror apt already uses (one-line or deb822 sources), so nothing else is contacted.
debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -nE 's/^deb( \[[^]]*\])? (https?:\/\/[^ ]+) [a-z]+ .*/\2/p' | grep -v security | head -1)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -nE 's/^URIs: *(https?:\/\/[^ ]+).*/\1/p' | grep -v security | head -1)
  echo "${MESHBENCH_BOX_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

cmd_kernel() {
  local name=${1:-}
  [ -n "$name" ] || usage
  command -v busybox >/dev/null || [ -x /bin/busybox ] || die "busybox is not installed: apt-get install busybox-static (scripts/setup.sh does)"
  # The harness's own fetch (pinned, checksummed) and its module resolution and cpio writer.
  node --import tsx --input-type=module - "$name" <<'JS'
const root = process.cwd();
const { resolveKernel } = await import(`${root}/harness/vm/kernels.ts`);
const { defaultCacheDir } = await import(`${root}/harness/vm/boot.ts`);
const { resolveModules, moduleName, cpioNewc } = await import(`${root}/harness/vm/initrd.ts`);
const { existsSync, readFileSync, writeFileSync, renameSync } = await import('node:fs');
const { execFileSync } = await import('node:child_process');
const { dirname, join } = await import('node:path');
const { gzipSync } = await import('node:zlib');
const name = process.argv[2];
let k;
try {
  k = await resolveKernel(name, defaultCacheDir());
} catch (e) {
  console.error(`vagrant-box: ${e.message}${e.hint ? `\n  ${e.hint}` : ''}`);
  process.exit(e.code === 'E_INPUT' ? 2 : 3);
}
const dep = readFileSync(join(k.modulesDir, 'modules.dep'), 'utf8');
const builtinPath = join(k.modulesDir, 'modules.builtin');
const builtin = existsSync(builtinPath) ? readFileSync(builtinPath, 'utf8') : '';
// Root disk, NIC (vagrant's SSH comes before the modules are synced in) and ext4's checksum;
// the crc32c module changed names across releases, so whichever this kernel has.
const have = new Set([...dep.split('\n'), ...builtin.split('\n')].map((l) => moduleName(l.split(':')[0])));
const want = ['virtio_pci', 'virtio_blk', 'virtio_net', 'crc32c_generic', 'crc32c_intel', 'ext4'].filter((m) => have.has(m));
const mods = resolveModules(dep, builtin, want);
const plain = mods.map((m) => `${moduleName(m)}.ko`);
const unpack = (p) => {
  const tool = p.endsWith('.xz') ? 'xz' : p.endsWith('.zst') ? 'zstd' : p.endsWith('.gz') ? 'gzip' : undefined;
  return tool ? execFileSync(tool, ['-dc', p], { maxBuffer: 1 << 28 }) : readFileSync(p);
};
const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
${plain.map((m) => `insmod /modules/${m} 2>/dev/null || echo "mbvagrant: insmod ${m} failed"`).join('\n')}
root=/dev/vda
for a in $(cat /proc/cmdline); do case $a in root=/dev/*) root=\${a#root=} ;; esac; done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
mount -t ext4 -o rw "$root" /newroot || { echo "mbvagrant: cannot mount $root"; echo o > /proc/sysrq-trigger; sleep 5; }
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
`;
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const D = 0o040755;
const entries = ['bin', 'dev', 'proc', 'sys', 'modules', 'newroot'].map((d) => ({ name: d, mode: D }));
entries.push({ name: 'dev/console', mode: 0o020600, rdev: [5, 1] });
entries.push({ name: 'bin/busybox', mode: 0o100755, data: readFileSync(busybox) }, { name: 'init', mode: 0o100755, data: Buffer.from(init) });
for (let i = 0; i < mods.length; i++) entries.push({ name: `modules/${plain[i]}`, mode: 0o100644, data: unpack(join(k.modulesDir, mods[i])) });
const out = join(dirname(k.vmlinuz), 'vagrant-initrd.gz');
writeFileSync(`${out}.tmp`, gzipSync(cpioNewc(entries)));
renameSync(`${out}.tmp`, out);
console.error(`vagrant-box: kernel ${name} (${k.release}) ready for Vagrant: ${k.vmlinuz}, ${out} (${want.join(', ')})`);
JS
}

cmd_box() {
  local minimal=0 out="${XDG_CACHE_HOME:-$HOME/.cache}/meshbench/boxes" add=1
  while [ $# -gt 0 ]; do
    case $1 in
      --minimal) minimal=1 ;;
      --no-add) add=0 ;;
      --out) out=${2:?--out needs a directory}; shift ;;
      *) usage ;;
    esac
    shift
  done
  [ "$(id -u)" = 0 ] || die "building the box needs root (mmdebstrap writes a root filesystem with real owners): run it as root"
  local t missing=()
  for t in mmdebstrap:mmdebstrap mke2fs:e2fsprogs qemu-img:qemu-utils tar:tar; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
  [ $add = 0 ] || command -v vagrant >/dev/null || missing+=(vagrant)
  [ ${#missing[@]} -eq 0 ] || die "missing tools: apt-get install --no-install-recommends ${missing[*]}"
  local key
  key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1 || true)
  [ -n "$key" ] || die "vagrant's insecure public key (keys/vagrant.pub) was not found: install Debian's vagrant package"

  # Inside the VMs, setup.sh must find every Debian package already there and Node.js ≥ 20.
  local pkgs=(systemd-sysv udev dbus openssh-server sudo ifupdown isc-dhcp-client rsync ca-certificates iproute2 kmod procps netbase less)
  if [ $minimal = 0 ]; then
    # shellcheck disable=SC2207
    pkgs+=($(sed -nE 's/^PKGS=\((.*)\)$/\1/p' scripts/setup.sh))
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    [ "$major" -ge 20 ] || die "this host's Node.js is missing or older than 20; the box copies it in (the VMs cannot download one)"
  fi
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/meshbench-box.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  local mirror
  mirror=$(debian_mirror)
  say "mmdebstrap $SUITE from $mirror into $work ($([ $minimal = 1 ] && echo minimal || echo "with setup.sh's packages"))"
  local node_bin='' npm_dir=''
  if [ $minimal = 0 ]; then
    node_bin=$(readlink -f "$(command -v node)")
    npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  fi
  mmdebstrap --variant=apt --include="$(IFS=,; echo "${pkgs[*]}")" \
    --customize-hook="$(cat <<HOOK
set -e
r="\$1"
chroot "\$r" useradd -m -s /bin/bash -U vagrant
echo 'vagrant:vagrant' | chroot "\$r" chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "\$r/etc/sudoers.d/vagrant"; chmod 440 "\$r/etc/sudoers.d/vagrant"
install -d -m 700 -o 1000 -g 1000 "\$r/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 '$key' "\$r/home/vagrant/.ssh/authorized_keys"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "\$r/etc/fstab"
echo meshbench > "\$r/etc/hostname"
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' > "\$r/etc/network/interfaces"
echo 'UseDNS no' > "\$r/etc/ssh/sshd_config.d/vagrant.conf"
# Each VM its own identity: host keys and machine-id are made at first boot.
rm -f "\$r"/etc/ssh/ssh_host_*
printf '[Unit]\nBefore=ssh.service\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n[Install]\nWantedBy=multi-user.target\n' > "\$r/etc/systemd/system/mb-ssh-keys.service"
chroot "\$r" systemctl enable mb-ssh-keys.service
: > "\$r/etc/machine-id"
if [ -n '$node_bin' ]; then
  install -m 755 '$node_bin' "\$r/usr/bin/node"
  mkdir -p "\$r/usr/lib/node_modules"; cp -a '$npm_dir' "\$r/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "\$r/usr/bin/npm"; ln -sf ../lib/node_modules/npm/bin/npx-cli.js "\$r/usr/bin/npx"
fi
rm -rf "\$r"/var/cache/apt/archives/*.deb "\$r"/var/lib/apt/lists/*
HOOK
)" "$SUITE" "$work/root" "deb $mirror $SUITE main"
  say "ext4 image (${DISK_GB} GB, sparse) → qcow2"
  mke2fs -q -t ext4 -L mbroot -d "$work/root" "$work/disk.raw" "${DISK_GB}G"
  rm -rf "$work/root"
  qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$work/box.img"
  rm -f "$work/disk.raw"
  printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$DISK_GB" > "$work/metadata.json"
  cat > "$work/Vagrantfile" <<'VF'
# meshbench/debian12: no kernel or bootloader on the disk; the meshbench Vagrantfile boots a
# kernel of its matrix directly (libvirt kernel/initrd/cmdline).
Vagrant.configure('2') do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = 'virtio'
  end
end
VF
  mkdir -p "$out"
  tar -C "$work" -czf "$out/meshbench-debian12.box.tmp" metadata.json Vagrantfile box.img
  mv "$out/meshbench-debian12.box.tmp" "$out/meshbench-debian12.box"
  say "box: $out/meshbench-debian12.box ($(du -h "$out/meshbench-debian12.box" | cut -f1))"
  if [ $add = 1 ]; then
    vagrant box add --force --name "$BOX_NAME" "$out/meshbench-debian12.box"
    say "added as $BOX_NAME; next: scripts/vagrant-box.sh kernel debian-6.1 && vagrant up"
  fi
}

case ${1:-} in
  box) shift; cmd_box "$@" ;;
  kernel) shift; cmd_kernel "$@" ;;
  *) usage ;;
esac
