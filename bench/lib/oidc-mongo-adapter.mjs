// A MongoDB adapter for oidc-provider (its documented adapter interface:
// upsert, find, findByUserCode, findByUid, consume, destroy, revokeByGrantId),
// over the official `mongodb` driver, for the token-endpoint benchmark's
// reference server (bench/oidc-provider-server.mjs) on the platform's FerretDB.
//
// One collection per model (snake_case of its name: refresh_token, grant,
// session, client, …), documents { _id, payload, expiresAt? }. FerretDB
// v1.24 has no TTL indexes, so nothing removes expired documents: expiresAt
// is stored and find() treats a document past it as gone, as a TTL index
// would (oidc-provider checks the expiry of what it reads anyway). Secondary
// indexes as oidc-provider's own MongoDB example sets them: payload.grantId
// for the models issued from a grant, payload.uid (unique) for sessions and
// payload.userCode (unique) for device codes.
import { MongoClient } from 'mongodb';

/** Models whose documents belong to a grant (revokeByGrantId removes them). */
const GRANTABLE = new Set(['access_token', 'authorization_code', 'refresh_token', 'device_code', 'backchannel_authentication_request', 'pre_authorized_code']);

const snakeCase = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

let db;

export class MongoAdapter {
  /** Connects (the services' driver settings, libs/chassis/src/mongo.ts) and creates the indexes. Returns the client, for close(). */
  static async connect(url, database) {
    const client = new MongoClient(url, {
      appName: 'bench-oidc-provider',
      serverSelectionTimeoutMS: 1000,
      connectTimeoutMS: 1000,
      socketTimeoutMS: 10_000,
      maxPoolSize: 20,
      retryWrites: false,
      ignoreUndefined: true,
      retryReads: true,
    });
    await client.connect();
    db = client.db(database);
    for (const name of GRANTABLE) await db.collection(name).createIndex({ 'payload.grantId': 1 }, { name: 'by_grant' });
    await db.collection('session').createIndex({ 'payload.uid': 1 }, { name: 'by_uid', unique: true });
    await db.collection('device_code').createIndex({ 'payload.userCode': 1 }, { name: 'by_user_code', unique: true });
    return client;
  }

  /** The database the adapter uses (after connect). */
  static get db() {
    return db;
  }

  constructor(name) {
    this.name = snakeCase(name);
  }

  get coll() {
    return db.collection(this.name);
  }

  /** Stores (or replaces) a model; expiresIn is in seconds. */
  async upsert(_id, payload, expiresIn) {
    const set = { payload, ...(expiresIn ? { expiresAt: new Date(Date.now() + expiresIn * 1000) } : {}) };
    await this.coll.updateOne({ _id }, { $set: set, ...(expiresIn ? {} : { $unset: { expiresAt: '' } }) }, { upsert: true });
  }

  async find(_id) {
    return this.#live(await this.coll.findOne({ _id }, { projection: { payload: 1, expiresAt: 1 } }));
  }

  async findByUserCode(userCode) {
    return this.#live(await this.coll.findOne({ 'payload.userCode': userCode }, { projection: { payload: 1, expiresAt: 1 } }));
  }

  async findByUid(uid) {
    return this.#live(await this.coll.findOne({ 'payload.uid': uid }, { projection: { payload: 1, expiresAt: 1 } }));
  }

  /** Marks a token used (refresh-token rotation, authorization codes): payload.consumed = now (seconds). */
  async consume(_id) {
    await this.coll.findOneAndUpdate({ _id }, { $set: { 'payload.consumed': Math.floor(Date.now() / 1000) } });
  }

  async destroy(_id) {
    await this.coll.deleteOne({ _id });
  }

  async revokeByGrantId(grantId) {
    await this.coll.deleteMany({ 'payload.grantId': grantId });
  }

  /** What a TTL index would have left: nothing once expiresAt has passed. */
  #live(doc) {
    if (!doc) return undefined;
    if (doc.expiresAt && doc.expiresAt <= new Date()) return undefined;
    return doc.payload;
  }
}
