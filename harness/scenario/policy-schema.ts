// The lab's own network-policy and traffic-routing format: one model every dataplane (iptables
// + HAProxy sidecars, node proxies, eBPF) is configured from, so all enforce the same rules.
// CiliumNetworkPolicy files are converted into it (dataplanes/mesh/policy/cnp.ts); evaluation and
// compilation live in dataplanes/mesh/policy/model.ts. Plain data and zod; nothing here touches
// the host. Every string may end up in a proxy config, hence the charsets and list bounds below.
// Semantics: docs/policies.md; bounds and charsets: docs/inputs.md.
import { z } from 'zod';

export const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_LABEL_MSG = 'must be a lowercase DNS label (a-z, 0-9, "-", at most 63 characters)';
const dnsLabel = z.string().regex(DNS_LABEL_RE, DNS_LABEL_MSG);
const port = z.number().int().min(1).max(65535);

/** Most entries in a list of the policy and route format (rules, ports, selectors, headers …). */
export const MAX_LIST = 64;

/**
 * Kubernetes qualified name: an optional DNS-subdomain prefix and "/", then a name of at most 63
 * characters, alphanumeric at both ends, "-", "_", "." inside.
 */
export const LABEL_KEY_RE =
  /^(?=.{1,317}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\/)?(?=[^/]{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
export const LABEL_KEY_MSG =
  'bad label key (a Kubernetes qualified name: [prefix/]name, name at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)';
/** Kubernetes label value: empty, or at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric. */
export const LABEL_VALUE_RE = /^(?=.{0,63}$)(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
export const LABEL_VALUE_MSG = 'bad label value (at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric, or empty)';
/** Label maps: at most this many labels. */
export const MAX_LABELS = 32;
export const labelKey = z.string().regex(LABEL_KEY_RE, LABEL_KEY_MSG);
export const labelValue = z.string().regex(LABEL_VALUE_RE, LABEL_VALUE_MSG);
const maxKeys = (n: number) => (m: Record<string, unknown>) => Object.keys(m).length <= n;
/** matchLabels: a pod is selected when it carries every one of these labels. {} selects all. */
export const LabelSelectorSchema = z.record(labelKey, labelValue).refine(maxKeys(MAX_LABELS), `at most ${MAX_LABELS} labels`);

/** An HTTP method name. Stricter than RFC 9110's token (no "|", "*" …) so it stays a plain name in every engine's config. */
export const HTTP_METHOD_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** An HTTP header name: RFC 9110 token characters except ' and ` (which no proxy config word can quote), at most 128. */
export const HTTP_TOKEN_RE = /^[!#$%&*+.^_|~0-9A-Za-z-]{1,128}$/;
/** A header value: printable ASCII and inner spaces; no quotes, backslash or control characters (CR/LF would split a config line). */
export const HEADER_VALUE_RE = /^([!#-&(-[\]-~]([ !#-&(-[\]-~]{0,1022}[!#-&(-[\]-~])?)?$/;
export const HEADER_VALUE_MSG = 'header values may hold printable ASCII and inner spaces (no quotes, backslash or control characters), at most 1024';
const HEADER_RE = /^([!#$%&*+.^_|~0-9A-Za-z-]{1,128})[ \t]*:[ \t]*(.*?)[ \t]*$/s;

/** Split "Name: value" into [name, value]; undefined when it is not of that form, has no value, or has characters no proxy config can hold. */
export function parseHeader(s: string): [name: string, value: string] | undefined {
  const m = HEADER_RE.exec(s);
  return m && m[2] !== '' && HEADER_VALUE_RE.test(m[2]) ? [m[1], m[2]] : undefined;
}

/** A path regex: printable ASCII without space, quotes or control characters (backslash is regex syntax), at most 1024. */
export const PATH_REGEX_RE = /^[!#-&(-~]{1,1024}$/;
export const PATH_REGEX_MSG = 'paths may hold printable ASCII without spaces, quotes or control characters, at most 1024';
/** A path prefix: "/" then RFC 3986 path characters except the single quote, at most 1024. */
export const PATH_PREFIX_RE = /^\/[-A-Za-z0-9._~!$&()*+,;=:@%/]{0,1023}$/;

/** Why a JavaScript regular expression does not compile, or undefined when it does. */
export function regexError(source: string): string | undefined {
  try {
    new RegExp(`^(?:${source})$`);
  } catch (e) {
    // V8 quotes the whole pattern before the reason: keep the reason only.
    return (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '').slice(0, 80);
  }
  // Engines hand the pattern to RE2 (Envoy) or PCRE (HAProxy): keep to what all of them read.
  if (/\(\?<?[=!]|\\[1-9]|\\k</.test(source)) return 'lookaround and backreferences are not supported (Envoy matches with RE2)';
  return undefined;
}

/** What is wrong with an HTTP path rule (charset, then regex syntax), or undefined. */
export function pathError(source: string): string | undefined {
  if (!PATH_REGEX_RE.test(source)) return PATH_REGEX_MSG;
  const e = regexError(source);
  return e ? `not a valid regular expression: ${e}` : undefined;
}

/** A path rule as the full-match regex engines use: ^(?:path)$. */
export const anchorPath = (path: string) => `^(?:${path})$`;

export const GRPC_SERVICE_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
export const GRPC_METHOD_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

const regexString = z.string().superRefine((s, ctx) => {
  const e = pathError(s);
  if (e) ctx.addIssue({ code: 'custom', message: e });
});

export const HttpRuleSchema = z
  .object({
    /** Exact method (GET, POST …); omitted = any. */
    method: z.string().regex(HTTP_METHOD_RE, 'must be an HTTP method name such as GET or POST').optional(),
    /** Regular expression the whole request path must match; omitted = any. */
    path: regexString.optional(),
    /** "Name: value" headers the request must carry (name case-insensitive, value exact). */
    headers: z
      .array(
        z
          .string()
          .max(1200)
          .refine(
            (s) => parseHeader(s) !== undefined,
            'must be "Name: value" (a header name, a colon, a value of printable ASCII without quotes or backslash)',
          ),
      )
      .max(MAX_LIST)
      .optional(),
  })
  .strict();

export const GrpcRuleSchema = z
  .object({
    /** Fully qualified service: inventory.v1.InventoryService. */
    service: z.string().regex(GRPC_SERVICE_RE, 'must be a fully qualified gRPC service such as pkg.v1.Service'),
    /** Method name; omitted = every method of the service. */
    method: z.string().regex(GRPC_METHOD_RE, 'must be a gRPC method name such as CheckStock').optional(),
  })
  .strict();

const ruleFields = {
  /** Peer namespaces; default: the policy's namespace when a selector list is given, else any. */
  namespaces: z.array(dnsLabel).min(1).max(MAX_LIST).optional(),
  /** TCP ports (the destination port: the pod's port on ingress, the peer's on egress); omitted = every port. */
  ports: z.array(port).min(1).max(MAX_LIST).optional(),
  /** Mutual authentication required of the peer. */
  auth: z.literal('required').optional(),
  http: z.array(HttpRuleSchema).min(1).max(MAX_LIST).optional(),
  grpc: z.array(GrpcRuleSchema).min(1).max(MAX_LIST).optional(),
};

type RuleLike = { ports?: number[]; http?: unknown[]; grpc?: unknown[] };
const needsPortsForL7 = (r: RuleLike, ctx: z.core.$RefinementCtx<RuleLike>) => {
  if ((r.http || r.grpc) && !r.ports)
    ctx.addIssue({ code: 'custom', path: [r.http ? 'http' : 'grpc'], message: 'L7 rules need the ports they apply to: add "ports"' });
};

export const IngressRuleSchema = z
  .object({ from: z.array(LabelSelectorSchema).min(1).max(MAX_LIST).optional(), ...ruleFields })
  .strict()
  .superRefine(needsPortsForL7);

export const EgressRuleSchema = z
  .object({ to: z.array(LabelSelectorSchema).min(1).max(MAX_LIST).optional(), ...ruleFields })
  .strict()
  .superRefine(needsPortsForL7);

export const PolicySchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    /** The pods of `namespace` this policy applies to. */
    selector: LabelSelectorSchema,
    /** Present (even empty) = the selected pods are default-deny for ingress. */
    ingress: z.array(IngressRuleSchema).max(MAX_LIST).optional(),
    /** Present (even empty) = the selected pods are default-deny for egress. */
    egress: z.array(EgressRuleSchema).max(MAX_LIST).optional(),
  })
  .strict();

// Routing done by the client-side proxy (canary, header routing): Envoy's route table or an
// HAProxy use_backend chain. First matching rule wins; a request no rule matches is answered
// 404 by the proxy (Envoy "NR"), so routes normally end with a rule without `match`.
export const RouteDestinationSchema = z
  .object({
    service: dnsLabel,
    /** Default: the route's namespace. */
    namespace: dnsLabel.optional(),
    /** Relative weight; give it on every destination of the rule or on none (= equal shares). */
    weight: z.number().int().positive().max(1_000_000).optional(),
  })
  .strict();

export const RouteMatchSchema = z
  .object({
    /** Request headers with exact values (names case-insensitive). */
    headers: z
      .record(
        z.string().regex(HTTP_TOKEN_RE, "bad header name (RFC 9110 token characters except ' and `, at most 128)"),
        z.string().regex(HEADER_VALUE_RE, HEADER_VALUE_MSG),
      )
      .refine(maxKeys(MAX_LIST), `at most ${MAX_LIST} headers`)
      .optional(),
    /** Path prefix, e.g. /api/. */
    pathPrefix: z
      .string()
      .regex(PATH_PREFIX_RE, 'must start with "/" and hold only URL path characters (A-Z a-z 0-9 - . _ ~ ! $ & ( ) * + , ; = : @ % /), at most 1024')
      .optional(),
  })
  .strict();

export const RouteRuleSchema = z
  .object({
    /** Omitted = every request. */
    match: RouteMatchSchema.optional(),
    to: z.array(RouteDestinationSchema).min(1).max(MAX_LIST),
  })
  .strict()
  .superRefine((r, ctx) => {
    const weighted = r.to.filter((d) => d.weight !== undefined).length;
    if (weighted && weighted !== r.to.length)
      ctx.addIssue({ code: 'custom', path: ['to'], message: 'give every destination a weight, or none (equal shares)' });
    const seen = new Set<string>();
    r.to.forEach((d, i) => {
      const k = `${d.namespace ?? ''}/${d.service}`;
      if (seen.has(k)) ctx.addIssue({ code: 'custom', path: ['to', i, 'service'], message: `destination "${d.service}" is listed twice` });
      seen.add(k);
    });
  });

export const RouteSchema = z
  .object({
    /** The Service whose traffic is routed (clients address it; the proxy picks the destinations). */
    service: dnsLabel,
    namespace: dnsLabel.default('default'),
    rules: z.array(RouteRuleSchema).min(1).max(MAX_LIST),
  })
  .strict()
  .superRefine((r, ctx) => {
    const catchAll = r.rules.findIndex((x) => !x.match || (!x.match.headers && !x.match.pathPrefix));
    if (catchAll >= 0 && catchAll < r.rules.length - 1)
      ctx.addIssue({ code: 'custom', path: ['rules', catchAll + 1], message: `never used: rule ${catchAll} before it matches every request` });
  });

export type LabelSelector = z.infer<typeof LabelSelectorSchema>;
export type HttpRule = z.infer<typeof HttpRuleSchema>;
export type GrpcRule = z.infer<typeof GrpcRuleSchema>;
export type IngressRule = z.infer<typeof IngressRuleSchema>;
export type EgressRule = z.infer<typeof EgressRuleSchema>;
export type Policy = z.infer<typeof PolicySchema>;
export type PolicyInput = z.input<typeof PolicySchema>;
export type RouteDestination = z.infer<typeof RouteDestinationSchema>;
export type RouteMatch = z.infer<typeof RouteMatchSchema>;
export type RouteRule = z.infer<typeof RouteRuleSchema>;
export type Route = z.infer<typeof RouteSchema>;
export type RouteInput = z.input<typeof RouteSchema>;
