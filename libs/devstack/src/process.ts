import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

export interface ProcessSpec {
  /** Short name for messages, e.g. "edge". */
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Every line of stdout and stderr is appended here. */
  logFile?: string;
  /**
   * Inspects each output line; returns a value once the process is ready.
   * start() resolves with the first non-undefined value.
   */
  readyWhen: (line: string) => Record<string, unknown> | undefined;
  readyTimeoutMs?: number;
  /** Also echo output lines to this process's stdout (npm start). */
  echo?: (line: string) => void;
}

/**
 * A real child process of the local platform (FerretDB, NATS or an app):
 * started, waited for until it says it is ready, stopped with SIGTERM (then
 * SIGKILL), killed outright, or restarted with the same arguments.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private readonly tail: string[] = [];
  private exitPromise: Promise<number | null> = Promise.resolve(null);
  ready: Record<string, unknown> = {};

  constructor(readonly spec: ProcessSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines of output, for error messages. */
  recentOutput(lines = 40): string {
    return this.tail.slice(-lines).join('\n');
  }

  /** Resolves when the current child exits, with its exit code. */
  exited(): Promise<number | null> {
    return this.exitPromise;
  }

  async start(overrides: Partial<Pick<ProcessSpec, 'args' | 'env'>> = {}): Promise<Record<string, unknown>> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    const spec = { ...this.spec, ...overrides };
    if (spec.logFile && !this.log) {
      mkdirSync(dirname(spec.logFile), { recursive: true });
      this.log = createWriteStream(spec.logFile, { flags: 'a' });
    }
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const timeoutMs = spec.readyTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGKILL');
        reject(new Error(`${spec.name} was not ready within ${timeoutMs} ms. Last output:\n${this.recentOutput()}`));
      }, timeoutMs);
      const onLine = (line: string) => {
        this.tail.push(line);
        if (this.tail.length > 400) this.tail.splice(0, this.tail.length - 400);
        this.log?.write(line + '\n');
        spec.echo?.(line);
        if (settled) return;
        const ready = spec.readyWhen(line);
        if (ready) {
          settled = true;
          clearTimeout(timer);
          this.ready = ready;
          resolve(ready);
        }
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', onLine);
      child.once('error', (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(`${spec.name} could not be started: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(`${spec.name} exited (${signal ?? code}) before it was ready. Last output:\n${this.recentOutput()}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after timeoutMs. Resolves once the process is gone. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = this.exitPromise;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL: the process dies without any chance to clean up. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = this.exitPromise;
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops (gracefully) and starts again with the same arguments. */
  async restart(): Promise<Record<string, unknown>> {
    await this.stop();
    return this.start();
  }

  closeLog(): void {
    this.log?.end();
    this.log = undefined;
  }
}

/** Parses a JSON log line of a Ledgerly app; undefined for anything else. */
export function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
