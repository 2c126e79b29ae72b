// A Place that does nothing and answers empty (no file, no tool, nothing alive), for unit tests to
// extend with what they observe or script. The real places: harness/place/local.ts, remote.ts.
import type { ExecResult, Mount, Place, PlaceExecOptions, PlaceProcess, PlaceStartSpec } from '../harness/place/index.js';

export class NullPlace implements Place {
  readonly name: string = 'fake';
  readonly root: string = '/opt/meshbench';
  async exec(_cmd: string, _args: string[], _opts: PlaceExecOptions = {}): Promise<ExecResult> {
    return { code: 0, stdout: '', stderr: '' };
  }
  async start(_spec: PlaceStartSpec): Promise<PlaceProcess> {
    throw new Error('NullPlace starts nothing');
  }
  async alive(_pid: number, _startTime?: number): Promise<boolean> {
    return false;
  }
  async kill(_pid: number, _opts?: { signal?: NodeJS.Signals; startTime?: number }): Promise<boolean> {
    return false;
  }
  async readFile(path: string): Promise<string | undefined> {
    return (await this.readFiles([path]))[0];
  }
  async readFiles(paths: string[]): Promise<(string | undefined)[]> {
    return paths.map(() => undefined);
  }
  async writeFile(_path: string, _text: string, _opts?: { mode?: number }): Promise<void> {}
  async mkdir(_path: string, _opts?: { mode?: number }): Promise<void> {}
  async exists(_path: string): Promise<boolean> {
    return false;
  }
  async list(_dir: string): Promise<string[]> {
    return [];
  }
  async mounts(): Promise<Mount[]> {
    return [];
  }
  async findTool(_name: string): Promise<string | undefined> {
    return undefined;
  }
}
