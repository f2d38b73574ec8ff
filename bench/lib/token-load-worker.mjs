// The load generator of the token-endpoint benchmark, in a worker thread (see
// token-load.mjs): N closed-loop connections, each sending one POST /token at a
// time over its own keep-alive socket (node:http), for a warm-up and then a
// measured window. Counts 200 responses that arrive within the window, with
// their latency (request written → response body read).
//
// refresh_token: each connection runs a chain. Refresh tokens rotate on every
// use and a rotated one must never be sent again (that revokes the grant), so
// each request carries the refresh token of the previous 200. A chain whose
// token stopped working (any other answer, an error or a timeout — after which
// it cannot be known whether the token was rotated) takes a spare token, if
// any is left, and is lost otherwise. Requests in flight at the end of the
// window are awaited (not counted), so every chain ends holding a usable token.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { URLSearchParams } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { quantile } from './stats.mjs';

const { url, grant, chains, spares, scope, warmupS, durationS, timeoutMs } = workerData;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: chains.length, maxFreeSockets: chains.length });

function post(authorization, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          authorization,
          accept: 'application/json',
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), started, ended: performance.now() }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { timeout: true })));
    req.on('error', reject);
    req.end(body);
  });
}

const bodyFor = (chain) =>
  grant === 'refresh_token'
    ? new URLSearchParams({ grant_type: 'refresh_token', refresh_token: chain.refreshToken }).toString()
    : new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }).toString();

const t0 = performance.now();
const measureFrom = t0 + warmupS * 1000;
const measureTo = measureFrom + durationS * 1000;
const latencies = [];
const statuses = {};
const outcome = { ok: 0, completed: 0, granted: 0, errors: 0, timeouts: 0, replaced: 0, lost: 0, firstError: undefined };
const spareTokens = [...spares];

async function run(chain) {
  while (performance.now() < measureTo) {
    let res;
    try {
      res = await post(chain.authorization, bodyFor(chain));
    } catch (err) {
      const now = performance.now();
      if (now >= measureFrom && now <= measureTo) {
        if (err.timeout) outcome.timeouts++;
        else outcome.errors++;
      }
      outcome.firstError ??= err.message;
      if (grant === 'refresh_token' && !replace(chain)) return;
      continue;
    }
    const counted = res.ended >= measureFrom && res.ended <= measureTo;
    if (counted) {
      outcome.completed++;
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
    let body;
    if (res.status === 200) {
      try {
        body = JSON.parse(res.text);
      } catch {
        body = undefined;
      }
    }
    const good = res.status === 200 && typeof body?.access_token === 'string' && (grant !== 'refresh_token' || typeof body.refresh_token === 'string');
    if (good) {
      outcome.granted++;
      if (grant === 'refresh_token') chain.refreshToken = body.refresh_token;
      if (counted) {
        outcome.ok++;
        latencies.push(res.ended - res.started);
      }
    } else {
      outcome.firstError ??= `${res.status}: ${res.text.slice(0, 300)}`;
      if (grant === 'refresh_token' && !replace(chain)) return;
    }
  }
}

/** A chain whose token can no longer be used takes a spare; false when none is left (the chain stops). */
function replace(chain) {
  const spare = spareTokens.shift();
  if (!spare) {
    outcome.lost++;
    chain.refreshToken = undefined;
    return false;
  }
  outcome.replaced++;
  Object.assign(chain, spare);
  return true;
}

await Promise.all(chains.map((chain) => run(chain)));
const ended = performance.now();
agent.destroy();
const sorted = latencies.sort((a, b) => a - b);
parentPort.postMessage({
  ...outcome,
  durationS,
  rps: outcome.ok / durationS,
  p50: quantile(sorted, 0.5),
  p99: quantile(sorted, 0.99),
  max: sorted.at(-1) ?? NaN,
  statuses,
  drainMs: Math.max(0, ended - measureTo),
  chains: chains.filter((c) => grant !== 'refresh_token' || c.refreshToken),
  spares: spareTokens,
});
