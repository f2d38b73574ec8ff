#!/usr/bin/env node
// Contracts: `generate` regenerates libs/proto/src/gen from proto/ with the
// pinned ts-proto; `check` (CI) runs buf lint, buf breaking against main when
// main has contracts, and fails if the committed generated code differs from
// a fresh generation.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const buf = join(root, 'node_modules/.bin/buf');
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, encoding: 'utf8', ...opts });
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};

function generate() {
  const r = run(buf, ['generate'], { cwd: join(root, 'proto'), stdio: 'inherit' });
  if (r.status !== 0) fail('buf generate failed');
}

const mode = process.argv[2];
if (mode === 'generate') {
  generate();
} else if (mode === 'check') {
  const lint = run(buf, ['lint'], { cwd: join(root, 'proto'), stdio: 'inherit' });
  if (lint.status !== 0) fail('buf lint failed');
  console.log('buf lint: ok');

  const hasMain = run('git', ['rev-parse', '--verify', '--quiet', 'main:proto/buf.yaml']).status === 0;
  if (hasMain) {
    const breaking = run(buf, ['breaking', 'proto', '--against', `${join(root, '.git')}#branch=main,subdir=proto`], { stdio: 'inherit' });
    if (breaking.status !== 0) fail('buf breaking: the contracts break compatibility with main');
    console.log('buf breaking (against main): ok');
  } else {
    console.log('buf breaking: skipped, main has no contracts yet');
  }

  generate();
  const diff = run('git', ['status', '--porcelain', '--', 'libs/proto/src/gen']);
  if (diff.stdout.trim() !== '') {
    fail(`Generated code is out of date with proto/ (run npm run proto:gen and commit):\n${diff.stdout}`);
  }
  console.log('generated code: up to date');
} else {
  fail('usage: node scripts/proto.mjs generate|check');
}
