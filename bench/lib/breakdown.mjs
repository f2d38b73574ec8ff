// Where the time of one GET /api.xro/2.0/Contacts goes: the same read at
// each layer, one call at a time (no queueing), the layers interleaved in
// short blocks so machine noise spreads over all of them. Differences of
// medians between layers estimate what each layer adds. Also FerretDB's
// query plan for the accounting query (explain), which says whether the
// filter and sort run in the database or in FerretDB after a full scan.
// The direct gRPC calls use `accounting`, a client with the edge's own
// certificate (setup.mjs accountingAsEdge): exactly the edge's call, without
// the audit-log write an operator call would add.
import { MongoClient } from 'mongodb';
import { performance } from 'node:perf_hooks';
import { summarize } from './stats.mjs';

const CONTACT_STATUS_ARCHIVED = 2;

export async function breakdown({ t, accounting, database, edge, bare, accessToken, tenantId, blocks, perBlock, log }) {
  const client = new MongoClient(t.mongo.url, { maxPoolSize: 4, ignoreUndefined: true, serverSelectionTimeoutMS: 1000 });
  await client.connect();
  try {
    const db = client.db(database);
    const contacts = db.collection('contacts');
    const filter = { tenantId, contactStatus: { $ne: CONTACT_STATUS_ARCHIVED } };
    const sort = { nameKey: 1, _id: 1 };
    const headers = { authorization: `Bearer ${accessToken}`, 'xero-tenant-id': tenantId, accept: 'application/json' };
    const metadata = { authorization: headers.authorization };
    const http = (url) => async () => {
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    };
    const layers = [
      { key: 'query', name: 'FerretDB query alone (mongodb driver, from the bench process)', fn: () => contacts.find(filter).sort(sort).toArray() },
      { key: 'bare', name: 'Bare koa + mongodb (HTTP)', fn: http(`${bare}/api.xro/2.0/Contacts`) },
      { key: 'grpc', name: "Accounting ListContacts (gRPC, direct, with the edge's certificate)", fn: () => accounting.listContacts({ tenantId }, { metadata }) },
      { key: 'edge', name: 'Edge GET /api.xro/2.0/Contacts (HTTP)', fn: http(`${edge}/api.xro/2.0/Contacts`) },
      { key: 'grpcOrg', name: "Accounting GetOrganisation (gRPC, direct, with the edge's certificate; a find by _id)", fn: () => accounting.getOrganisation({ tenantId }, { metadata }) },
      { key: 'edgeOrg', name: 'Edge GET /api.xro/2.0/Organisation (HTTP)', fn: http(`${edge}/api.xro/2.0/Organisation`) },
    ];
    const samples = Object.fromEntries(layers.map((l) => [l.key, []]));
    for (const l of layers) for (let i = 0; i < 10; i++) await l.fn(); // warm-up
    for (let b = 0; b < blocks; b++) {
      for (const l of b % 2 === 0 ? layers : [...layers].reverse()) {
        for (let i = 0; i < perBlock; i++) {
          const s = performance.now();
          await l.fn();
          samples[l.key].push(performance.now() - s);
        }
      }
    }
    const stats = Object.fromEntries(layers.map((l) => [l.key, { name: l.name, ...summarize(samples[l.key]) }]));
    for (const l of layers) log(`  ${l.name}: p50 ${stats[l.key].p50.toFixed(2)} ms`);

    const explained = await db.command({ explain: { find: 'contacts', filter, sort } });
    const byId = await db.command({ explain: { find: 'contacts', filter: { _id: 'x' } } });
    const collectionSize = await contacts.estimatedDocumentCount();
    return {
      stats,
      calls: blocks * perBlock,
      collectionSize,
      plan: {
        plan: JSON.stringify(explained.queryPlanner?.Plan ?? explained.queryPlanner ?? null),
        filterPushdown: explained.filterPushdown,
        sortPushdown: explained.sortPushdown,
        byIdFilterPushdown: byId.filterPushdown,
      },
    };
  } finally {
    await client.close();
  }
}
