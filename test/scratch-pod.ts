// A scratch "pod" for capture-rule tests: one network namespace with an address in the lab range,
// a veth pair whose both ends stay inside it (traffic that is not redirected leaves on eth0 and
// goes nowhere), and a listener process reporting which local port each connection landed on.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { cleanAround } from './helpers.js';
import { exec } from '../harness/util/exec.js';
import { sweep } from '../harness/topology/cleanup.js';

const NODE = process.execPath;

// One listener process on several ports; each accepted connection is reported on stdout and told
// which local port it landed on (after REDIRECT the accepted socket's local port is the proxy port).
const SERVER = `
const net = require('net');
const ports = process.argv.slice(1).map(Number);
let up = 0;
for (const p of ports) {
  net.createServer((c) => {
    console.log(JSON.stringify({ port: c.localPort, remote: c.remoteAddress }));
    c.end(c.localPort + '\\n');
  }).listen(p, '0.0.0.0', () => { if (++up === ports.length) console.log('ready'); });
}`;

export interface Listener {
  child: ChildProcess;
  seen: { port: number; remote: string }[];
}

/** The scratch pod's helpers; also registers the suite's clean-up (every lab object before and after, this prefix after each file). */
export function scratchPod(PREFIX: string, NS: string, POD_IP: string, VIP: string) {
  cleanAround();
  test.serial.after.always(async () => {
    await sweep(PREFIX);
  });

  async function podUp(): Promise<void> {
    await sweep(PREFIX);
    await exec('ip', ['netns', 'add', NS]);
    // No IPv6 chatter on eth0: its tx counter then counts only the SYNs the test sends.
    await exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { netns: NS });
    await exec('ip', ['-batch', '-'], {
      netns: NS,
      input: [
        'link set lo up',
        'link add eth0 type veth peer name eth0p',
        `addr add ${POD_IP}/24 dev eth0`,
        'link set eth0 up',
        'link set eth0p up',
        `neigh add ${VIP} lladdr 02:00:00:00:00:09 dev eth0 nud permanent`,
        '',
      ].join('\n'),
    });
  }

  function listen(ports: number[]): Promise<Listener> {
    const child = spawn('nsenter', [`--net=/run/netns/${NS}`, '--', NODE, '-e', SERVER, ...ports.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const l: Listener = { child, seen: [] };
    return new Promise((resolve, reject) => {
      let buf = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`listener not ready: ${err}`)), 10_000);
      child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
      child.on('exit', (code) => reject(new Error(`listener exited ${code}: ${err}`)));
      child.stdout!.setEncoding('utf8').on('data', (d) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'ready') {
            clearTimeout(timer);
            resolve(l);
          } else if (line.startsWith('{')) l.seen.push(JSON.parse(line));
        }
      });
    });
  }

  function stop(l: Listener | undefined): void {
    if (l && l.child.exitCode === null && l.child.pid) l.child.kill('SIGKILL');
  }

  async function eth0TxPackets(): Promise<number> {
    const r = await exec('ip', ['-j', '-s', 'link', 'show', 'dev', 'eth0'], { netns: NS });
    return JSON.parse(r.stdout)[0].stats64.tx.packets;
  }

  return { podUp, listen, stop, eth0TxPackets };
}
