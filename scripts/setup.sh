#!/usr/bin/env bash
# Everything meshbench needs on a fresh Debian 12 machine, as root: Debian packages, fortio
# (pinned, with go install, only when none is on PATH), npm packages, the TypeScript build.
# Re-running it is quick and changes nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FORTIO_VERSION=1.68.2 # the last release whose module graph resolves from the Go module proxy alone
ACTIONLINT_VERSION=1.7.12 # lints .github/workflows in the tests (test/unit/nightly.test.ts)
say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$1" >&2; exit "${2:-3}"; }

[ "$(id -u)" = 0 ] || die "needs root (it installs Debian packages and the lab creates network namespaces): run it as root" 3

# 1. Debian packages. Installed only when one is missing.
PKGS=(iproute2 iptables util-linux procps iputils-ping curl haproxy clang llvm make gcc libc6-dev libbpf-dev bpftool tcpdump wireguard-go wireguard-tools git ca-certificates chromium qemu-system-x86 busybox-static kmod dropbear-bin openssh-client shellcheck)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install these packages by hand: ${missing[*]}"
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# ── vagrant (begin) ─────────────────────────────────────────────────────────────────────────
# vagrant and the vagrant-libvirt plugin from Debian, for the top-level Vagrantfile (docs/vagrant.md).
# Client side only: libvirt0 comes along, never the daemon. libvirt-daemon-system would define
# and autostart libvirt's `default` network, a NAT on a private range that adds iptables rules
# to this host, so the install is refused if apt would pull any daemon or network package, runs
# with service starts denied (a temporary policy-rc.d, the previous one put back even on
# failure), and is checked afterwards: no libvirtd/virtlogd/dnsmasq process, no autostarted
# libvirt network, the firewall rules as before. MESHBENCH_SETUP_VAGRANT=0 skips it.
VAGRANT_PKGS=(vagrant vagrant-libvirt)
VAGRANT_FORBIDDEN='^(libvirt-daemon.*|libvirt-clients|dnsmasq.*|firewalld|iptables-persistent|netfilter-persistent|nfs-kernel-server)$'
vagrant_missing=()
for p in "${VAGRANT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || vagrant_missing+=("$p")
done
if [ "${MESHBENCH_SETUP_VAGRANT:-1}" = 0 ]; then
  say "vagrant: skipped (MESHBENCH_SETUP_VAGRANT=0)"
elif [ ${#vagrant_missing[@]} -eq 0 ]; then
  say "vagrant: $(vagrant --version 2>/dev/null) with vagrant-libvirt present"
else
  command -v apt-get >/dev/null || die "apt-get not found; install by hand, without recommends: ${vagrant_missing[*]}"
  (
    fw_rules() { { iptables-save || true; ip6tables-save || true; nft list ruleset || true; } 2>/dev/null | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]/[0:0]/g; s/counter packets [0-9]+ bytes [0-9]+/counter/g'; }
    lv_procs() { pgrep -x libvirtd; pgrep -x virtlogd; pgrep -x virtqemud; pgrep -x dnsmasq; true; }
    fw_before=$(fw_rules)
    procs_before=$(lv_procs)
    apt-get update -qq >/dev/null
    plan=$(apt-get install -s --no-install-recommends "${vagrant_missing[@]}" | awk '/^Inst /{print $2}')
    bad=$(grep -E "$VAGRANT_FORBIDDEN" <<<"$plan" || true)
    [ -z "$bad" ] || die "vagrant: apt would install $(echo $bad) with ${vagrant_missing[*]}: refusing (they start services or define libvirt's default NAT network); install vagrant by hand or set MESHBENCH_SETUP_VAGRANT=0" 3
    saved=''
    if [ -e /usr/sbin/policy-rc.d ]; then saved=/usr/sbin/policy-rc.d.meshbench-saved; mv /usr/sbin/policy-rc.d "$saved"; fi
    restore() { rm -f /usr/sbin/policy-rc.d; [ -z "$saved" ] || mv "$saved" /usr/sbin/policy-rc.d; }
    trap restore EXIT
    printf '#!/bin/sh\n# meshbench setup: no service starts while vagrant is installed (removed afterwards)\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    say "installing vagrant: ${vagrant_missing[*]} (no recommends, service starts denied)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vagrant_missing[@]}" >/dev/null
    restore
    trap - EXIT
    [ "$(lv_procs)" = "$procs_before" ] || die "vagrant: a libvirt/dnsmasq process appeared during the install: $(lv_procs | tr '\n' ' ')" 3
    if [ -d /etc/libvirt/qemu/networks/autostart ] && [ -n "$(ls -A /etc/libvirt/qemu/networks/autostart)" ]; then
      die "vagrant: a libvirt network is set to autostart: $(ls /etc/libvirt/qemu/networks/autostart); remove it (virsh net-autostart --disable NAME)" 3
    fi
    [ "$(fw_rules)" = "$fw_before" ] || die "vagrant: the host's iptables/nftables rules changed during the install: check iptables-save and nft list ruleset" 3
  )
  # A throw-away VAGRANT_HOME: this check must not leave a ~/.vagrant.d behind.
  vh=$(mktemp -d)
  plugins=$(VAGRANT_HOME="$vh" vagrant plugin list 2>&1 || true)
  rm -rf "$vh"
  grep -q vagrant-libvirt <<<"$plugins" || die "vagrant: Debian's vagrant-libvirt is installed but \`vagrant plugin list\` does not show it: $plugins" 3
  say "vagrant: $(vagrant --version) with vagrant-libvirt installed; no libvirt service, network or firewall rule was added"
fi
# ── vagrant (end) ───────────────────────────────────────────────────────────────────────────

# 2. Node.js ≥ 20.
command -v node >/dev/null || die "Node.js not found: install Node.js 20 or later (Debian: nodejs from NodeSource, or nvm)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "Node.js $(node --version) is too old: meshbench needs Node.js 20 or later"

# 3. fortio, pinned, into .tools/bin unless one is already on PATH.
if command -v fortio >/dev/null; then
  say "fortio: $(command -v fortio) ($(fortio version 2>/dev/null | head -1)) found on PATH, used as is"
elif [ -x .tools/bin/fortio ] && [ "$(.tools/bin/fortio version 2>/dev/null | head -1)" = "$FORTIO_VERSION" ]; then
  say "fortio: .tools/bin/fortio $FORTIO_VERSION present"
else
  command -v go >/dev/null || die "fortio is not on PATH and Go is not installed to build it: install Go ≥ 1.23 (https://go.dev/dl) or put fortio $FORTIO_VERSION on PATH"
  say "fortio: go install fortio.org/fortio@v$FORTIO_VERSION into .tools/bin (about a minute)"
  mkdir -p .tools/bin
  GOBIN="$ROOT/.tools/bin" GOFLAGS=-mod=mod go install "fortio.org/fortio@v$FORTIO_VERSION"
fi

# 3b. actionlint, pinned, into .tools/bin unless that version is on PATH (the tests lint the
#     nightly workflow with it). It needs Go 1.25; an older go fetches that toolchain itself.
if [ "$(actionlint -version 2>/dev/null | head -1)" = "v$ACTIONLINT_VERSION" ]; then
  say "actionlint: $(command -v actionlint) v$ACTIONLINT_VERSION found on PATH, used as is"
elif [ "$(.tools/bin/actionlint -version 2>/dev/null | head -1)" = "v$ACTIONLINT_VERSION" ]; then
  say "actionlint: .tools/bin/actionlint v$ACTIONLINT_VERSION present"
else
  command -v go >/dev/null || die "actionlint is not installed and Go is not installed to build it: install Go (1.25 or later, or an older one that can fetch that toolchain) or put actionlint v$ACTIONLINT_VERSION on PATH"
  say "actionlint: go install github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION into .tools/bin"
  mkdir -p .tools/bin
  GOBIN="$ROOT/.tools/bin" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
fi

# 3c. The project's Go programs (apps/: mb-load, the open-loop load generator, and the gRPC test
#     services) into .tools/bin; go install only rebuilds what changed. Modules come from the Go
#     module proxy, pinned by apps/go.sum.
if [ -f apps/go.mod ]; then
  command -v go >/dev/null || die "Go is not installed: it builds apps/ (mb-load, the gRPC services); install Go 1.26 or later (https://go.dev/dl)"
  say "apps: go install ./cmd/... into .tools/bin"
  mkdir -p .tools/bin
  (cd apps && GOBIN="$ROOT/.tools/bin" go install ./cmd/...) || die "building apps/ failed (see above)"
fi

# 4. The eBPF dataplane: its programs (clang -target bpf) and the flow reader (libbpf). make only
#    rebuilds what changed.
say "eBPF programs: make -C bpf"
make -s -C bpf || die "building the eBPF programs failed (see above): the ebpf dataplanes need clang, llvm and libbpf-dev"
mkdir -p .tools/bin
if [ ! -x .tools/bin/mb-flowd ] || [ agent/flowd.c -nt .tools/bin/mb-flowd ] || [ bpf/meshbench.h -nt .tools/bin/mb-flowd ]; then
  cc -O2 -Wall -o .tools/bin/mb-flowd agent/flowd.c -lbpf || die "building agent/flowd.c failed (needs gcc and libbpf-dev)"
fi

# 5. npm packages, only when package-lock.json changed since the last install.
lockhash=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -d node_modules ] || [ "$(cat node_modules/.meshbench-lock 2>/dev/null)" != "$lockhash" ]; then
  say "npm ci"
  # playwright-core drives the Debian chromium above (the report's browser test); never let an
  # npm package download a browser of its own.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lockhash" > node_modules/.meshbench-lock
else
  say "npm packages: up to date"
fi

# 6. Build (tsc is incremental enough; schemas are regenerated from the zod sources).
say "building"
npm run -s build >/dev/null
say "ready: npx meshbench --help"
