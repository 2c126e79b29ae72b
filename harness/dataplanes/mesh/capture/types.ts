// What a capture model is described by, shared by the capture modules.

export type IptablesBackend = 'nf_tables' | 'legacy';

/** "iptables v1.8.9 (nf_tables)" → nf_tables; "(legacy)" or no suffix (before 1.8) → legacy. */
export function iptablesBackend(versionLine: string): IptablesBackend {
  return /\(nf_tables\)/.test(versionLine) ? 'nf_tables' : 'legacy';
}

export interface CaptureDescription {
  model: string;
  /** What the real mesh runs to install the same rules. */
  upstreamInvocation: string;
  /** e.g. "iptables REDIRECT (nf_tables backend)"; the run record's redirect mechanism. */
  mechanism: string;
  iptables: { version: string; backend: IptablesBackend };
  table: 'nat';
  family: 'IPv4';
  chains: string[];
  /** The jumps from the built-in chains into the capture chains. */
  hooks: string[];
  ports: { outbound: number; inbound: number; [name: string]: number };
  /** uid (and gid) of the proxy whose traffic is left alone; ambient's upstream form names a socket mark instead. */
  excluded: { uid?: number; gid?: number; mark?: string; inboundPorts: string[]; outboundPorts: string[]; notes: string[] };
  rules: number;
  /** What the real tool can also install that this model does not, and why. */
  leftOut: string[];
}
