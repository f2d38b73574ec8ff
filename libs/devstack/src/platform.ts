import { ensurePki, type Credentials } from '@ledgerly/pki';
import { join } from 'node:path';
import { freePort } from './infra.js';
import { appEntry, repoRoot } from './paths.js';
import { ManagedProcess, parseJsonLine } from './process.js';

/** Start order: each app's peers come before it. */
export const APPS = ['identity', 'consent', 'token', 'accounting', 'edge'] as const;
export type AppName = (typeof APPS)[number];

/** Ports of `npm start` (and docker-compose). */
export const DEFAULT_PORTS: Readonly<Record<AppName, number>> = {
  identity: 50051,
  consent: 50052,
  token: 50053,
  accounting: 50054,
  edge: 3000,
};

export interface PlatformOptions {
  mongoUrl: string;
  natsUrl: string;
  logDir: string;
  /** The development PKI (created if missing): each app's certificate, and OPERATOR_IDENTITY's. */
  pkiDir: string;
  /** Prefix of every service's database name, so tests can share one FerretDB. */
  databasePrefix?: string;
  /** Fixed ports; missing ones are picked freely (tests). */
  ports?: Partial<Record<AppName, number>>;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Extra LEDGERLY_* settings per app. */
  env?: Partial<Record<AppName, Record<string, string>>>;
  echo?: (app: AppName, line: string) => void;
}

/** The identity the devstack's own tools (tests, bench, npm start's seeding) act as. */
export const OPERATOR_IDENTITY = 'operator:local';

export interface Platform {
  /** The operator's mutual-TLS files, for direct gRPC calls. */
  readonly operator: Credentials;
  readonly issuer: string;
  readonly edgeUrl: string;
  readonly addresses: Record<AppName, string>;
  readonly processes: Record<AppName, ManagedProcess>;
  /** The env each app was started with (for restarts and extra instances). */
  readonly envs: Record<AppName, Record<string, string>>;
  stop(): Promise<void>;
}

/** Starts the five apps as real processes (node apps/<app>/dist/main.js). */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const prefix = options.databasePrefix ?? 'ledgerly_';
  const ports = { ...options.ports };
  const edgePort = ports.edge ?? (await freePort());
  const issuer = `http://localhost:${edgePort}`;
  const addresses = {} as Record<AppName, string>;
  const processes = {} as Record<AppName, ManagedProcess>;
  const envs = {} as Record<AppName, Record<string, string>>;
  const pki = await ensurePki(options.pkiDir, [...APPS, OPERATOR_IDENTITY]);

  const common = (app: AppName): Record<string, string> => ({
    LEDGERLY_LOG_LEVEL: options.logLevel ?? 'info',
    LEDGERLY_NATS_URL: options.natsUrl,
    LEDGERLY_TLS_CA: pki[app]!.caFile,
    LEDGERLY_TLS_CERT: pki[app]!.certFile,
    LEDGERLY_TLS_KEY: pki[app]!.keyFile,
    ...(app === 'edge' ? {} : { LEDGERLY_MONGO_URL: options.mongoUrl, LEDGERLY_MONGO_DB: `${prefix}${app}` }),
  });
  const peers = (...names: AppName[]) =>
    Object.fromEntries(names.map((n) => [`LEDGERLY_${n.toUpperCase()}_ADDR`, addresses[n]]));

  const stopAll = async () => {
    for (const app of [...APPS].reverse()) {
      const proc = processes[app];
      if (proc) {
        await proc.stop();
        proc.closeLog();
      }
    }
  };

  try {
    for (const app of APPS) {
      let env: Record<string, string>;
      switch (app) {
        case 'identity':
          env = { ...common(app) };
          break;
        case 'consent':
          env = { ...common(app), ...peers('identity') };
          break;
        case 'token':
          env = { ...common(app), LEDGERLY_ISSUER: issuer, ...peers('identity', 'consent') };
          break;
        case 'accounting':
          env = { ...common(app), LEDGERLY_ISSUER: issuer, ...peers('identity', 'consent', 'token') };
          break;
        case 'edge':
          env = { ...common(app), LEDGERLY_ISSUER: issuer, ...peers('identity', 'consent', 'token', 'accounting') };
          break;
      }
      const listenKey = app === 'edge' ? 'LEDGERLY_HTTP_LISTEN' : 'LEDGERLY_GRPC_LISTEN';
      env[listenKey] = `127.0.0.1:${app === 'edge' ? edgePort : (ports[app] ?? 0)}`;
      Object.assign(env, options.env?.[app]);
      const proc = appProcess(app, env, join(options.logDir, `${app}.log`), options.echo);
      processes[app] = proc;
      const ready = await proc.start();
      addresses[app] = String(ready['address']);
      // Restarts must come back on the same address, where peers look for it.
      env[listenKey] = addresses[app];
      proc.spec.env = env;
      envs[app] = env;
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  return { operator: pki[OPERATOR_IDENTITY]!, issuer, edgeUrl: `http://localhost:${edgePort}`, addresses, processes, envs, stop: stopAll };
}

/** A process for one app, ready once it logs "Service ready" with its address. */
export function appProcess(
  app: AppName,
  env: Record<string, string>,
  logFile: string,
  echo?: (app: AppName, line: string) => void,
): ManagedProcess {
  return new ManagedProcess({
    name: app,
    command: process.execPath,
    args: ['--enable-source-maps', appEntry(app)],
    cwd: repoRoot(),
    env,
    logFile,
    ...(echo ? { echo: (line: string) => echo(app, line) } : {}),
    readyWhen: (line) => {
      const record = parseJsonLine(line);
      return record?.['msg'] === 'Service ready' && typeof record['address'] === 'string' ? record : undefined;
    },
  });
}
