#!/usr/bin/env node
// npm test: everything CI checks, on a fresh clone, starting what it needs.
//   1. build every package (Nx, tsc)
//   2. contracts: buf lint, buf breaking against main, generated code up to date
//   3. lint and type-check every package
//   4. the pinned FerretDB and NATS binaries (built from tools/ with the Go module proxy)
//      and Debian's chromium for the browser test (apt-get), when missing
//   5. every package's tests, one package at a time: each starts its own
//      FerretDB and NATS (and the e2e tests the whole platform) on free ports
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false', FORCE_COLOR: process.env.FORCE_COLOR ?? '0' };
const nx = join(root, 'node_modules/.bin/nx');
const started = Date.now();

function step(title, cmd, args) {
  const t0 = Date.now();
  process.stdout.write(`\n▸ ${title}\n`);
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`\n✗ ${title} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
  process.stdout.write(`✓ ${title} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
}

step('Build', nx, ['run-many', '-t', 'build', '--output-style=static']);
step('Contracts (buf lint, buf breaking, generated code)', process.execPath, ['scripts/proto.mjs', 'check']);
step('Lint and type-check', nx, ['run-many', '-t', 'lint', 'typecheck', '--output-style=static', '--parallel=2']);
step('Test infrastructure (FerretDB, NATS, chromium)', process.execPath, [
  '--input-type=module',
  '-e',
  `import { ensureBinary, ensureChromium } from './libs/devstack/dist/index.js';
   const log = (m) => console.log('  ' + m);
   console.log('  ferretdb: ' + await ensureBinary('ferretdb', log));
   console.log('  nats-server: ' + await ensureBinary('nats-server', log));
   console.log('  chromium: ' + ensureChromium(log));`,
]);
step('Tests', nx, ['run-many', '-t', 'test', '--output-style=stream', '--parallel=1']);
process.stdout.write(`\nAll checks passed in ${Math.round((Date.now() - started) / 1000)} s.\n`);
