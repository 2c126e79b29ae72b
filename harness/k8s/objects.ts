// Kubernetes objects as plain data, and the naming every object of a run follows: one namespace
// per scenario namespace, `<prefix>-<namespace>`, and on every object the run's label, so
// `down --target kubernetes` (and an interrupted run's teardown) finds what the lab made and
// nothing else. Pure: nothing here talks to a cluster.
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** An object and the scenario line it comes from (`file:line`), for the API server's refusals. */
export interface Rendered {
  object: K8sObject;
  origin: string;
  /** For an object the user wrote (a CNP file passed through): `file:line` of one of its fields. */
  locate?(path: (string | number)[]): string;
}

/** Every object the lab creates carries these; the run label's value is the run's prefix. */
export const RUN_LABEL = 'meshbench.dev/run';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'meshbench' } as const;
/** The field manager of server-side apply. */
export const FIELD_MANAGER = 'meshbench';

/** The cluster namespace of a scenario namespace in run `prefix`. */
export const k8sNamespace = (prefix: string, ns: string): string => `${prefix}-${ns}`;

/** Labels of every object of run `prefix`, merged with the object's own. */
export const runLabels = (prefix: string, own: Record<string, string> = {}): Record<string, string> => ({ ...own, ...MANAGED_BY, [RUN_LABEL]: prefix });

/** The label selector that finds run `prefix`'s objects (or every run's, without a prefix). */
export const runSelector = (prefix?: string): string => (prefix ? `${RUN_LABEL}=${prefix}` : RUN_LABEL);

/** `kind/namespace/name`: how messages name an object. */
export const objectRef = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
