// The cost of token checking at the edge, in-process (no HTTP, no platform):
// runs bench/token-check.mjs in a child `node --expose-gc` (a clean heap to
// measure the views in, and an event loop no platform output competes for),
// forwards its progress lines and returns its JSON result.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export function measureTokenChecks({ cleanup, ops, sizes, log }) {
  const script = fileURLToPath(new URL('../token-check.mjs', import.meta.url));
  const child = spawn(process.execPath, ['--expose-gc', script], {
    env: { ...process.env, BENCH_TOKEN_OPS: String(ops), BENCH_VIEW_SIZES: sizes.join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  cleanup.add('token-check child', async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const tail = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    log(`  ${line}`);
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => (out += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`Could not start ${script}: ${err.message}`)));
    void exited.then(({ code, signal }) => {
      if (code !== 0) return reject(new Error(`bench/token-check.mjs exited (${signal ?? code}). Last output:\n${tail.join('\n')}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)));
      } catch (err) {
        reject(new Error(`bench/token-check.mjs printed no result (${err.message})`));
      }
    });
  });
}
