import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startFerretDB, startNats } from './infra.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A FerretDB shared by the project's tests: give each test its own database. */
    mongoUrl: string;
    /** A NATS server with JetStream shared by the project's tests. */
    natsUrl: string;
    /** A temporary directory removed after the run. */
    testDir: string;
  }
}

/**
 * Vitest globalSetup: one real FerretDB and one real NATS (JetStream) per
 * test project, on free loopback ports with temporary data directories,
 * stopped and removed afterwards.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'ledgerly-test-'));
  const mongo = await startFerretDB({ dataDir: join(dir, 'ferretdb'), logFile: join(dir, 'ferretdb.log') });
  const nats = await startNats({ dataDir: join(dir, 'nats'), logFile: join(dir, 'nats.log') });
  project.provide('mongoUrl', mongo.url);
  project.provide('natsUrl', nats.url);
  project.provide('testDir', dir);
  return async () => {
    await nats.process.stop();
    await mongo.process.stop();
    nats.process.closeLog();
    mongo.process.closeLog();
    rmSync(dir, { recursive: true, force: true });
  };
}
