// Revocation propagation: how long after DELETE /connections/{id} has
// answered 204 does the same access token get refused for that organisation
// — at the edge (HTTP 401), and at the accounting service called directly
// over gRPC (UNAUTHENTICATED / PERMISSION_DENIED)?
//
// Accounting is called with `accounting`, a client holding the edge's
// certificate (setup.mjs accountingAsEdge), as the edge calls it: an operator
// call would also write an audit-log entry to FerretDB on every poll.
//
// One access token is connected to N organisations; each round revokes one
// of them. Before the DELETE, both the edge and accounting are asked once
// with the token (both accept), so their connection views hold a cached
// "live" answer, which is the case the connection.revoked event must undo.
// After the 204, one poller per side asks again in a loop (a pause of
// `pollMs` between calls, at most `timeoutMs`). Both pollers run at the same
// time, from the same instant t0: the moment the 204 arrived.
//
// The same rounds are also run after each service has been restarted
// (measureAfterRestarts): stop the process, start it again, wait until the
// platform answers normally (the edge's /healthz is 200 with a healthy event
// feed, and a direct call to the restarted service succeeds), then run the
// rounds on organisations kept for that service.
import { RemoteError, Status } from '@ledgerly/chassis';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Asks `probe` until it refuses; how long that took from t0, and what was served meanwhile. */
async function pollUntilRefused(probe, t0, { pollMs, timeoutMs }) {
  let accepted = 0;
  let other = 0;
  let lastAcceptedSentMs;
  for (;;) {
    const sent = performance.now();
    const outcome = await probe();
    const at = performance.now();
    if (outcome.refused) {
      return { refusedMs: at - t0, refusedSentMs: sent - t0, lastAcceptedSentMs, accepted, other, status: outcome.status };
    }
    if (outcome.accepted) {
      accepted++;
      lastAcceptedSentMs = sent - t0;
    } else other++;
    if (at - t0 > timeoutMs) return { timedOut: true, accepted, other, lastAcceptedSentMs, status: outcome.status };
    await sleep(pollMs);
  }
}

export async function measureRevocation({ edge, accessToken, tenants, accounting, pollMs, timeoutMs, log }) {
  const authorization = `Bearer ${accessToken}`;
  const edgeProbe = (tenantId) => async () => {
    let res;
    try {
      res = await fetch(`${edge}/api.xro/2.0/Contacts`, { headers: { authorization, 'xero-tenant-id': tenantId, accept: 'application/json' } });
      await res.arrayBuffer();
    } catch (err) {
      // A connection cut by a restart: neither served nor refused.
      return { accepted: false, refused: false, status: `fetch failed (${err?.cause?.code ?? err?.message ?? err})` };
    }
    return { accepted: res.status === 200, refused: res.status === 401 || res.status === 403, status: String(res.status) };
  };
  const grpcProbe = (tenantId) => async () => {
    try {
      await accounting.listContacts({ tenantId }, { metadata: { authorization } });
      return { accepted: true, refused: false, status: 'OK' };
    } catch (err) {
      if (!(err instanceof RemoteError)) throw err;
      const refused = err.code === Status.UNAUTHENTICATED || err.code === Status.PERMISSION_DENIED;
      return { accepted: false, refused, status: Status[err.code] ?? String(err.code) };
    }
  };

  const rounds = [];
  for (const [i, { tenantId, connectionId }] of tenants.entries()) {
    const edgeWarm = await edgeProbe(tenantId)();
    const grpcWarm = await grpcProbe(tenantId)();
    if (!edgeWarm.accepted || !grpcWarm.accepted) {
      throw new Error(`Round ${i + 1}: the token was not accepted before the revocation (edge ${edgeWarm.status}, accounting ${grpcWarm.status})`);
    }
    const sent = performance.now();
    const del = await fetch(`${edge}/connections/${connectionId}`, { method: 'DELETE', headers: { authorization } });
    const t0 = performance.now();
    await del.arrayBuffer();
    if (del.status !== 204) throw new Error(`Round ${i + 1}: DELETE /connections/${connectionId} answered ${del.status}`);
    const [edgeResult, grpcResult] = await Promise.all([
      pollUntilRefused(edgeProbe(tenantId), t0, { pollMs, timeoutMs }),
      pollUntilRefused(grpcProbe(tenantId), t0, { pollMs, timeoutMs }),
    ]);
    rounds.push({ round: i + 1, deleteMs: t0 - sent, edge: edgeResult, accounting: grpcResult });
    if ((i + 1) % 10 === 0 || i + 1 === tenants.length) {
      const show = (r) => (r.timedOut ? `not refused within ${timeoutMs} ms` : `${r.refusedMs.toFixed(1)} ms`);
      log(`  round ${i + 1}/${tenants.length}: edge ${show(edgeResult)}, accounting ${show(grpcResult)}`);
    }
  }
  return rounds;
}

export const RESTART_ORDER = ['edge', 'accounting', 'consent', 'token', 'identity'];

/**
 * For each service in turn: restart it, wait until the platform answers
 * normally again, then run `rounds` revocation rounds on the organisations
 * kept for it (tenantsByService[service]).
 */
export async function measureAfterRestarts({ t, app, accounting, tenantsByService, pollMs, timeoutMs, normalTimeoutMs, log }) {
  const out = [];
  for (const service of RESTART_ORDER) {
    const tenants = tenantsByService[service];
    const restart = await restartAndWait({ t, app, accounting, service, normalTimeoutMs });
    log(
      `  ${service}: stopped in ${restart.stopMs.toFixed(0)} ms, ready ${restart.startMs.toFixed(0)} ms after starting, ` +
        `answering normally ${restart.normalMs.toFixed(0)} ms later (${restart.failedChecks} checks failed meanwhile); ${tenants.length} rounds…`,
    );
    const rounds = await measureRevocation({ edge: app.edge, accessToken: app.accessToken, tenants, accounting, pollMs, timeoutMs, log });
    out.push({ service, restart, rounds });
  }
  return out;
}

/** Stops and starts one service's process; resolves once the platform answers normally again. */
async function restartAndWait({ t, app, accounting, service, normalTimeoutMs }) {
  const proc = t.platform.processes[service];
  const authorization = `Bearer ${app.accessToken}`;
  const metadata = { authorization };
  // "A call succeeds": on accounting with the client the rounds poll with (so
  // its channel has reconnected too), elsewhere as the operator.
  const directCall = {
    edge: async () => {
      const res = await fetch(`${app.edge}/api.xro/2.0/Organisation`, { headers: { authorization, 'xero-tenant-id': app.throughputOrg, accept: 'application/json' } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET /api.xro/2.0/Organisation: ${res.status}`);
    },
    accounting: () => accounting.getOrganisation({ tenantId: app.throughputOrg }, { metadata }),
    consent: () => t.grpc.consent.listConnections({ userId: app.userId, clientId: app.clientId, authEventId: '' }),
    token: () => t.grpc.token.getJwks({}),
    identity: () => t.grpc.identity.getUser({ userId: app.userId }),
  }[service];
  const healthz = async () => {
    const res = await fetch(`${app.edge}/healthz`);
    const body = await res.json().catch(() => ({}));
    if (res.status !== 200 || body?.events?.healthy !== true) throw new Error(`/healthz: ${res.status} ${JSON.stringify(body)}`);
  };

  const t0 = performance.now();
  await proc.stop();
  const t1 = performance.now();
  await proc.start();
  const t2 = performance.now();
  let failedChecks = 0;
  let lastError;
  for (;;) {
    try {
      await healthz();
      await directCall();
      break;
    } catch (err) {
      failedChecks++;
      lastError = err;
      if (performance.now() - t2 > normalTimeoutMs) {
        throw new Error(`After restarting ${service}, the platform did not answer normally within ${normalTimeoutMs} ms: ${lastError?.message ?? lastError}`);
      }
      await sleep(20);
    }
  }
  const t3 = performance.now();
  return { stopMs: t1 - t0, startMs: t2 - t1, normalMs: t3 - t2, failedChecks, lastError: lastError ? String(lastError.message ?? lastError).slice(0, 200) : undefined };
}
