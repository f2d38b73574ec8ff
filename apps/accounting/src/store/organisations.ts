import type { Organisation } from '@ledgerly/proto/accounting/v1/accounting';
import { isDuplicateKeyError, SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

export interface OrganisationDoc extends Omit<Organisation, 'organisationId'> {
  /** The tenant id (the identity service's organisation id). */
  _id: string;
}

/** The accounting service's own profile of each organisation it keeps books for. */
export class OrganisationStore {
  private readonly organisations: Collection<OrganisationDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.organisations = db.collection<OrganisationDoc>('organisations');
  }

  async find(tenantId: string): Promise<Organisation | null> {
    const doc = await this.organisations.findOne({ _id: tenantId });
    if (!doc) return null;
    const { _id, ...rest } = doc;
    return { ...rest, organisationId: _id };
  }

  /** Creates the profile once; concurrent first calls agree on one. */
  createIfMissing(organisation: Organisation): Promise<Organisation> {
    const { organisationId, ...rest } = organisation;
    return this.writer.run(organisationId, async () => {
      try {
        await this.organisations.insertOne({ _id: organisationId, ...rest });
      } catch (err) {
        if (!isDuplicateKeyError(err)) throw err;
      }
      return (await this.find(organisationId))!;
    });
  }
}
