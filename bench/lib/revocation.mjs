// Revocation propagation: how long after DELETE /connections/{id} has
// answered 204 does the same access token get refused for that organisation
// — at the edge (HTTP 401), and at the accounting service called directly
// over gRPC (UNAUTHENTICATED / PERMISSION_DENIED)?
//
// One access token is connected to N organisations; each round revokes one
// of them. Before the DELETE, both the edge and accounting are asked once
// with the token (both accept), so their connection views hold a cached
// "live" answer, which is the case the connection.revoked event must undo.
// After the 204, one poller per side asks again in a loop (a pause of
// `pollMs` between calls, at most `timeoutMs`). Both pollers run at the same
// time, from the same instant t0: the moment the 204 arrived.
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
    const res = await fetch(`${edge}/api.xro/2.0/Contacts`, { headers: { authorization, 'xero-tenant-id': tenantId, accept: 'application/json' } });
    await res.arrayBuffer();
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
