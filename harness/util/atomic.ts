// Whole-file writes: a temporary file beside the target, renamed over it, so a reader or a crash
// never sees half a file. The temporary file never outlives a failure; the error is rethrown as
// it came (callers word it: results/write.ts writeFileAtomic).
import { renameSync, rmSync, writeFileSync } from 'node:fs';

export function writeFileAtomicRaw(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* a directory of that name is not ours to remove */
    }
    throw err;
  }
}
