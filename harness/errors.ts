// One error class for the whole lab, with a stable code and the exit status the CLI maps it to
// (0 ok, 1 run failed, 2 bad input, 3 environment missing), after undici's errors.

export type ErrorCode =
  | 'E_INPUT' // bad scenario/topology/CLI input: exit 2
  | 'E_ENV' // missing tool, privilege or kernel feature: exit 3
  | 'E_RUN' // a run step failed: exit 1
  | 'E_INTERRUPTED'; // a signal stopped the run: exit 130

export const exitCodes: Record<ErrorCode, number> = {
  E_INPUT: 2,
  E_ENV: 3,
  E_RUN: 1,
  E_INTERRUPTED: 130,
};

export class MeshbenchError extends Error {
  readonly code: ErrorCode;
  /** What the user can do about it, printed under the message. */
  readonly hint?: string;
  /** For bad input: every problem found, each already formatted as `file:line: message`. */
  readonly details: string[];

  constructor(code: ErrorCode, message: string, opts: { hint?: string; details?: string[]; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'MeshbenchError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
  }

  get exitCode(): number {
    return exitCodes[this.code];
  }
}

export const inputError = (message: string, details: string[] = [], hint?: string) => new MeshbenchError('E_INPUT', message, { details, hint });
export const envError = (message: string, hint?: string) => new MeshbenchError('E_ENV', message, { hint });
export const runError = (message: string, cause?: unknown) => new MeshbenchError('E_RUN', message, { cause });
