import { randomSecret, sha256, SingleWriter } from '@ledgerly/chassis';
import { FlowState, type AuthorizationRequest } from '@ledgerly/proto/consent/v1/consent';
import type { Collection, Db, UpdateFilter } from 'mongodb';

export interface FlowDoc {
  _id: string;
  state: FlowState;
  request: AuthorizationRequest;
  /** SHA-256 of the browser-binding cookie of the browser that started the flow. */
  bindingHash: string;
  csrfToken: string;
  userId: string;
  sessionId: string;
  authTime: Date | null;
  amr: string[];
  tenantIds: string[];
  grantedScopes: string[];
  grantId: string;
  authEventId: string;
  createdAt: Date;
  expiresAt: Date;
}

/**
 * Flows, with every transition one atomic compare-and-set on the state: two
 * concurrent submissions of the same form cannot both succeed.
 */
export class FlowStore {
  private readonly flows: Collection<FlowDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.flows = db.collection<FlowDoc>('flows');
  }

  async ensureIndexes(): Promise<void> {
    await this.flows.createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
  }

  async create(input: {
    request: AuthorizationRequest;
    browserBinding: string;
    ttlSeconds: number;
    session?: { userId: string; sessionId: string; authTime: Date; amr: string[] };
  }): Promise<FlowDoc> {
    const now = new Date();
    const doc: FlowDoc = {
      _id: randomSecret(18),
      state: input.session ? FlowState.FLOW_STATE_CONSENT_REQUIRED : FlowState.FLOW_STATE_LOGIN_REQUIRED,
      request: input.request,
      bindingHash: sha256(input.browserBinding),
      csrfToken: randomSecret(24),
      userId: input.session?.userId ?? '',
      sessionId: input.session?.sessionId ?? '',
      authTime: input.session?.authTime ?? null,
      amr: input.session?.amr ?? [],
      tenantIds: [],
      grantedScopes: [],
      grantId: '',
      authEventId: '',
      createdAt: now,
      expiresAt: new Date(now.getTime() + input.ttlSeconds * 1000),
    };
    await this.flows.insertOne(doc);
    return doc;
  }

  /** The flow, unless unknown or expired. */
  async findLive(id: string): Promise<FlowDoc | null> {
    if (!id) return null;
    // By _id alone, then checked here: FerretDB 1.x only uses an index for a filter that is exactly {_id}.
    const flow = await this.flows.findOne({ _id: id });
    return flow && flow.expiresAt > new Date() ? flow : null;
  }

  /** Moves a live flow from one of `from` to a new state; null when it was not in `from`. */
  transition(id: string, from: FlowState[], set: UpdateFilter<FlowDoc>['$set']): Promise<FlowDoc | null> {
    return this.writer.run(id, () =>
      this.flows.findOneAndUpdate(
        { _id: id, state: { $in: from }, expiresAt: { $gt: new Date() } },
        { $set: set! },
        { returnDocument: 'after' },
      ),
    );
  }

  async sweepExpired(): Promise<number> {
    const result = await this.flows.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
