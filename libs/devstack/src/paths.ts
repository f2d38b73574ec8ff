import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The monorepo's root: the nearest parent whose package.json is "ledgerly". */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'ledgerly') {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('Cannot find the ledgerly repository root');
    dir = parent;
  }
}

/** node apps/<name>/dist/main.js */
export function appEntry(app: string): string {
  return join(repoRoot(), 'apps', app, 'dist', 'main.js');
}
