// What runs inside the guest after switch_root: stage 2 mounts the filesystems a lab needs
// (proc, sys, dev, cgroup v2, bpffs; /tmp stays the overlay's, so a checkout under the host's
// /tmp, as CI's clone may be, is still there), runs the command in its own session with output and
// exit code in the exchange directory, forwards a stop request from the host as SIGINT (so a
// lab run inside tears down and writes its record as `incomplete`), and powers off.
import { GUEST_IO } from './initrd.js';

/** The host creates this file in the exchange directory to ask the guest's command to stop. */
export const STOP_FILE = 'stop';

export function renderStage2(): string {
  return `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up 2>/dev/null
echo MBVM-CMD-START
cd /
setsid sh ${GUEST_IO}/cmd.sh > ${GUEST_IO}/output 2>&1 </dev/null &
pid=$!
stopped=
while kill -0 $pid 2>/dev/null; do
  if [ -z "$stopped" ] && [ -e ${GUEST_IO}/${STOP_FILE} ]; then stopped=1; kill -INT -$pid 2>/dev/null; fi
  sleep 0.5
done
wait $pid
echo $? > ${GUEST_IO}/exit.tmp && mv ${GUEST_IO}/exit.tmp ${GUEST_IO}/exit
echo MBVM-CMD-DONE
sync
echo o > /proc/sysrq-trigger
sleep 10
`;
}
