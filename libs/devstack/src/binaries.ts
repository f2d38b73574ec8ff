import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './paths.js';

const run = promisify(execFile);

export type ToolName = 'ferretdb' | 'nats-server';

/** The Go package each pinned tool module builds. */
const PACKAGES: Record<ToolName, string> = {
  ferretdb: '.',
  'nats-server': 'github.com/nats-io/nats-server/v2',
};

/**
 * Builds a pinned infrastructure binary from its Go module under tools/ (with
 * the Go module proxy), once: the result is kept in .data/bin with a stamp of
 * the module's go.mod, go.sum and sources, and rebuilt when they change.
 * Concurrent callers (parallel test projects) wait on a lock directory.
 */
export async function ensureBinary(tool: ToolName, log: (msg: string) => void = () => {}): Promise<string> {
  const root = repoRoot();
  const moduleDir = join(root, 'tools', tool);
  const binDir = join(root, '.data', 'bin');
  const binary = join(binDir, tool);
  const stampFile = `${binary}.stamp`;
  const stamp = moduleStamp(moduleDir);
  if (existsSync(binary) && readIfExists(stampFile) === stamp) return binary;

  mkdirSync(binDir, { recursive: true });
  const lock = `${binary}.lock`;
  await acquireLock(lock);
  try {
    if (existsSync(binary) && readIfExists(stampFile) === stamp) return binary;
    log(`Building ${tool} from tools/${tool} (Go module proxy; first time only)…`);
    const started = Date.now();
    try {
      await run('go', ['build', '-trimpath', '-o', binary, PACKAGES[tool]], {
        cwd: moduleDir,
        env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`Building ${tool} failed (is Go ≥ 1.26 on PATH?):\n${e.stderr ?? e.message}`);
    }
    writeFileSync(stampFile, stamp);
    log(`Built ${tool} in ${Math.round((Date.now() - started) / 1000)} s`);
    return binary;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function moduleStamp(dir: string): string {
  const hash = createHash('sha256');
  for (const file of readdirSync(dir).sort()) {
    if (file === 'go.mod' || file === 'go.sum' || file.endsWith('.go')) {
      hash.update(file).update(readFileSync(join(dir, file)));
    }
  }
  return hash.digest('hex');
}

function readIfExists(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

async function acquireLock(lock: string): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch {
      // A lock left by a build that died more than 15 minutes ago is stale.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // It disappeared meanwhile: try again.
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
