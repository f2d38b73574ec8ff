import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureBinary } from './binaries.js';
import { ManagedProcess, parseJsonLine } from './process.js';

export interface InfraProcess {
  readonly process: ManagedProcess;
  /** mongodb://… or nats://… */
  readonly url: string;
  readonly port: number;
}

export interface StartInfraOptions {
  /** Data lives here (a temporary directory in tests, .data/ for npm start). */
  dataDir: string;
  /** 0 (default) lets the server pick a free port; restarts keep it. */
  port?: number;
  logFile?: string;
  echo?: (line: string) => void;
}

/** FerretDB v1.24.2 with its SQLite backend, on 127.0.0.1 only. */
export async function startFerretDB(options: StartInfraOptions): Promise<InfraProcess> {
  const binary = await ensureBinary('ferretdb');
  mkdirSync(options.dataDir, { recursive: true });
  const args = (port: number) => [`--listen-addr=127.0.0.1:${port}`, `--data-dir=${options.dataDir}`, '--log-level=warn'];
  const proc = new ManagedProcess({
    name: 'ferretdb',
    command: binary,
    args: args(options.port ?? 0),
    ...(options.logFile ? { logFile: options.logFile } : {}),
    ...(options.echo ? { echo: options.echo } : {}),
    readyWhen: (line) => {
      const uri = parseJsonLine(line)?.['uri'];
      return typeof uri === 'string' ? { uri } : undefined;
    },
  });
  const ready = await proc.start();
  const url = String(ready['uri']);
  const port = Number(new URL(url).port);
  proc.spec.args = args(port);
  return { process: proc, url, port };
}

/** nats-server with JetStream, store under dataDir, on 127.0.0.1 only. */
export async function startNats(options: StartInfraOptions): Promise<InfraProcess> {
  const binary = await ensureBinary('nats-server');
  mkdirSync(options.dataDir, { recursive: true });
  const args = (port: number) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(options.dataDir, 'jetstream')];
  let listening = 0;
  const proc = new ManagedProcess({
    name: 'nats',
    command: binary,
    // -1: the server picks a free port and logs it; restarts keep it.
    args: args(options.port && options.port > 0 ? options.port : -1),
    ...(options.logFile ? { logFile: options.logFile } : {}),
    ...(options.echo ? { echo: options.echo } : {}),
    readyWhen: (line) => {
      const match = /Listening for client connections on [\d.]+:(\d+)/.exec(line);
      if (match) listening = Number(match[1]);
      return /Server is ready/.test(line) && listening > 0 ? { port: listening } : undefined;
    },
  });
  await proc.start();
  const port = listening;
  proc.spec.args = args(port);
  return { process: proc, url: `nats://127.0.0.1:${port}`, port };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
