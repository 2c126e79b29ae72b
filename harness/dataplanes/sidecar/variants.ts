// The sidecar family's ablation switches (issue 17): what each variant keeps, drops and refuses.
// mtls=off: the same proxies, routing and HTTP processing over plain HTTP, no certificates, policy
// peers checked by their pods' addresses (an ipBlock of the `from` pods). mode=capture-only: the
// same capture rules into a TCP pass-through; policies are not enforced (as in baseline: every
// workload is an allowed flow), routes are refused (the measured requests would go elsewhere).
// l7=off: the same proxies, capture and mTLS, both in TCP mode: Services by original destination,
// peers authorized at the session, L7 rules enforced at L4 for the peers they name (as `ebpf`),
// routes refused. With mode=capture-only, l7 changes nothing (there is no HTTP to turn off).
import { inputError } from '../../errors.js';
import { locate } from '../../scenario/load.js';
import type { Scenario } from '../../scenario/schema.js';
import type { Cluster } from '../../topology/graph.js';
import { refuseMutualAuth } from '../mesh/services.js';
import type { DataplaneOption, Settings } from '../types.js';

export const SIDECAR_OPTIONS: readonly DataplaneOption[] = [
  {
    key: 'mtls',
    values: ['on', 'off'],
    default: 'on',
    summary: 'off: the proxies talk plain HTTP (no TLS, no certificates); policy peers are checked by pod address',
  },
  {
    key: 'mode',
    values: ['mesh', 'capture-only'],
    default: 'mesh',
    summary: 'capture-only: the same capture rules lead to a TCP pass-through that does nothing else (no TLS, HTTP, policy or routing)',
  },
  {
    key: 'l7',
    values: ['on', 'off'],
    default: 'on',
    summary:
      'off: both proxies in TCP mode (no HTTP processing): Services by original destination, L7 policy rules enforced at L4 for the peers they name, no routes; no effect with mode=capture-only',
  },
];

export const SIDECAR_DEFAULTS: Settings = Object.fromEntries(SIDECAR_OPTIONS.map((o) => [o.key, o.default]));

export interface SidecarVariant {
  /** The proxies talk mTLS (false: plain HTTP, or no mesh function at all). */
  mtls: boolean;
  /** capture-only: a TCP pass-through per pod. */
  passThrough: boolean;
  /** The proxies process HTTP (false: mode tcp, the l7=off ablation, or capture-only). */
  l7: boolean;
}

/** What a variant's settings mean; capture-only has no TLS whatever `mtls` says. */
export function sidecarVariant(st: Settings = SIDECAR_DEFAULTS): SidecarVariant {
  const passThrough = st.mode === 'capture-only';
  return { passThrough, mtls: !passThrough && st.mtls !== 'off', l7: !passThrough && st.l7 !== 'off' };
}

/** The l7=off ablation proper: TCP-mode mesh proxies (capture-only has no HTTP either, but is its own ablation). */
export const tcpMode = (v: SidecarVariant) => !v.passThrough && !v.l7;

/** One line for the variant's `summary`. */
export function variantSummary(v: SidecarVariant): string {
  if (v.passThrough) return 'capture-only ablation: capture rules into a per-pod TCP pass-through, no TLS, HTTP, policy or routing';
  const parts: string[] = [];
  if (!v.mtls) parts.push(`mtls=off ablation: plain ${v.l7 ? 'HTTP' : 'TCP'} between the proxies, policy peers by pod address`);
  if (!v.l7) parts.push('l7=off ablation: proxies in TCP mode (no HTTP processing), L7 rules enforced at L4 for the peers they name');
  return parts.join('; ');
}

/** Throws E_INPUT (file:line of each) for what the scenario asks that the variant cannot honour. */
export function checkVariant(name: string, v: SidecarVariant, s: Scenario, c: Cluster): void {
  const at = (path: (string | number)[]) => locate(s.file, path);
  if (!v.l7) {
    const what = v.passThrough ? 'the capture-only pass-through does' : 'the l7=off proxies (TCP mode) do';
    const errors = (s.routes ?? []).map(
      (r, i) => `${at(['routes', i])}: routes.${i}: the route on Service ${r.service} needs HTTP routing, which ${what} not do`,
    );
    if (errors.length)
      throw inputError(
        `${name} cannot honour the routes of ${s.file}`,
        errors,
        v.passThrough
          ? 'run routes on the mesh variant; the capture-only ablation needs a scenario without routes'
          : 'run routes with l7=on; the l7=off ablation needs a scenario without routes',
      );
  }
  if (!v.mtls && !v.passThrough) refuseMutualAuth(name, s, c);
}
