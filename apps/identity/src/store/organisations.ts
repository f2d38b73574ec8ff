import type { Collection, Db } from 'mongodb';
import { randomUUID } from 'node:crypto';

export interface OrganisationDoc {
  _id: string;
  name: string;
  countryCode: string;
  baseCurrency: string;
  createdAt: Date;
}

export class OrganisationStore {
  private readonly organisations: Collection<OrganisationDoc>;

  constructor(db: Db) {
    this.organisations = db.collection<OrganisationDoc>('organisations');
  }

  async create(input: { name: string; countryCode: string; baseCurrency: string }): Promise<OrganisationDoc> {
    const doc: OrganisationDoc = { _id: randomUUID(), ...input, createdAt: new Date() };
    await this.organisations.insertOne(doc);
    return doc;
  }

  findById(id: string): Promise<OrganisationDoc | null> {
    return this.organisations.findOne({ _id: id });
  }

  findByIds(ids: string[]): Promise<OrganisationDoc[]> {
    return ids.length === 0 ? Promise.resolve([]) : this.organisations.find({ _id: { $in: ids } }).toArray();
  }
}
