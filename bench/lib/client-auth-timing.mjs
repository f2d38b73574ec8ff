// An unknown client and a wrong secret must cost the same (RFC 6749 §2.3.1, and so that
// client ids cannot be enumerated by timing). Measured over HTTP, as an attacker sees it:
// POST /token with HTTP Basic, one request at a time, the two kinds interleaved in random
// order, on the same connection pool; reported as the ratio of their medians.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { summarize } from './stats.mjs';

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * @param {{ issuer: string, clientId: string, clientSecret: string, rounds: number, log: (m: string) => void }} o
 */
export async function measureClientAuthTiming({ issuer, clientId, clientSecret, rounds, log }) {
  const url = new URL('/token', issuer);
  // An id of the same shape as a real one (32 upper-case hex), never registered.
  const unknownId = randomBytes(16).toString('hex').toUpperCase();
  const kinds = {
    wrongSecret: basic(clientId, `${clientSecret.slice(0, -4)}AAAA`),
    unknownClient: basic(unknownId, clientSecret),
  };
  const send = async (authorization) => {
    const started = performance.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=refresh_token&refresh_token=not-a-token',
    });
    const body = await res.text();
    return { ms: performance.now() - started, status: res.status, body };
  };
  // Sanity: both are the same 401 with the same body.
  const a = await send(kinds.wrongSecret);
  const b = await send(kinds.unknownClient);
  if (a.status !== 401 || b.status !== 401 || a.body !== b.body) {
    throw new Error(`Expected the same 401 for an unknown client and a wrong secret, got ${a.status} ${a.body} / ${b.status} ${b.body}`);
  }
  // Warm-up, discarded.
  for (let i = 0; i < 20; i++) await send(i % 2 ? kinds.wrongSecret : kinds.unknownClient);
  const samples = { wrongSecret: [], unknownClient: [] };
  for (let i = 0; i < rounds; i++) {
    const order = Math.random() < 0.5 ? ['wrongSecret', 'unknownClient'] : ['unknownClient', 'wrongSecret'];
    for (const kind of order) samples[kind].push((await send(kinds[kind])).ms);
  }
  const wrong = summarize(samples.wrongSecret);
  const unknown = summarize(samples.unknownClient);
  log(`  wrong secret p50 ${wrong.p50.toFixed(2)} ms, unknown client p50 ${unknown.p50.toFixed(2)} ms (${rounds} each)`);
  return { rounds, wrong, unknown, ratio: unknown.p50 / wrong.p50, body: a.body };
}
