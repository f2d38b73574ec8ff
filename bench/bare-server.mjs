#!/usr/bin/env node
// The reference of the throughput benchmark: the least a Node HTTP service can
// do to answer GET /api.xro/2.0/Contacts — koa plus the official mongodb
// driver running the very query the accounting service runs
// (apps/accounting/src/store/contacts.ts, ContactStore.list without paging):
//   contacts.find({ tenantId, contactStatus: { $ne: ARCHIVED } }).sort({ nameKey: 1, _id: 1 })
// on the same FerretDB and database, returned as JSON. No auth, no gRPC hop,
// no Xero mapping, no access log: the gap to the edge is what those cost.
//
// Started by scripts/bench.mjs as its own process (the edge is one too), with
// BENCH_MONGO_URL and BENCH_MONGO_DB; it prints one JSON line
// {"msg":"Bare server ready","address":"127.0.0.1:<port>"} and stops on SIGTERM.
import Koa from 'koa';
import { MongoClient } from 'mongodb';

const CONTACT_STATUS_ARCHIVED = 2; // accounting.v1 ContactStatus

const url = process.env['BENCH_MONGO_URL'];
const database = process.env['BENCH_MONGO_DB'];
if (!url || !database) {
  console.error('BENCH_MONGO_URL and BENCH_MONGO_DB are required');
  process.exit(2);
}

// The same driver settings as the services (libs/chassis/src/mongo.ts), pool size included.
const client = new MongoClient(url, {
  appName: 'bench-bare',
  serverSelectionTimeoutMS: 1000,
  connectTimeoutMS: 1000,
  socketTimeoutMS: 10_000,
  maxPoolSize: 20,
  retryWrites: false,
  ignoreUndefined: true,
  retryReads: true,
});
await client.connect();
const contacts = client.db(database).collection('contacts');

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method !== 'GET' || ctx.path !== '/api.xro/2.0/Contacts') {
    ctx.status = 404;
    ctx.body = { error: 'not found' };
    return;
  }
  const tenantId = ctx.get('xero-tenant-id').trim();
  if (!tenantId) {
    ctx.status = 400;
    ctx.body = { error: 'xero-tenant-id is required' };
    return;
  }
  const docs = await contacts.find({ tenantId, contactStatus: { $ne: CONTACT_STATUS_ARCHIVED } }).sort({ nameKey: 1, _id: 1 }).toArray();
  ctx.body = { Contacts: docs };
});

const server = app.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(JSON.stringify({ msg: 'Bare server ready', address: `${address}:${port}` }));
});
server.keepAliveTimeout = 5_000; // as the edge (apps/edge/src/service.ts)

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  server.close(() => void client.close().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
