import { isDuplicateKeyError } from '@ledgerly/chassis';
import { ContactStatus, type Contact } from '@ledgerly/proto/accounting/v1/accounting';
import type { Collection, Db, Filter } from 'mongodb';
import { nameKey } from '../domain/contacts.js';

export interface ContactDoc extends Omit<Contact, 'contactId' | 'validationErrors'> {
  _id: string;
  tenantId: string;
  /**
   * Lower-cased name while the contact is active, `archived:<id>` otherwise:
   * a unique index on (tenantId, nameKey) keeps active names unique without
   * the partial indexes FerretDB lacks.
   */
  nameKey: string;
}

export interface ContactQuery {
  tenantId: string;
  includeArchived: boolean;
  searchTerm?: string;
  contactIds?: string[];
  modifiedAfter?: Date;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class ContactStore {
  private readonly contacts: Collection<ContactDoc>;

  constructor(db: Db) {
    this.contacts = db.collection<ContactDoc>('contacts');
  }

  async ensureIndexes(): Promise<void> {
    await this.contacts.createIndex({ tenantId: 1, nameKey: 1 }, { unique: true, name: 'active_name_unique' });
    await this.contacts.createIndex({ tenantId: 1, updatedDateUtc: 1 }, { name: 'by_tenant_updated' });
  }

  /** Active names among `keys` that already exist in the organisation. */
  async existingNameKeys(tenantId: string, keys: string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const docs = await this.contacts.find({ tenantId, nameKey: { $in: keys } }, { projection: { nameKey: 1 } }).toArray();
    return new Set(docs.map((d) => d.nameKey));
  }

  /**
   * Inserts all the contacts or none: when a unique name was taken meanwhile
   * (a race), the ones inserted are removed again and the conflict reported.
   */
  async insertAll(tenantId: string, contacts: Contact[]): Promise<{ inserted: true } | { inserted: false; conflict: true }> {
    const docs = contacts.map((c) => toDoc(tenantId, c));
    try {
      await this.contacts.insertMany(docs, { ordered: true });
      return { inserted: true };
    } catch (err) {
      await this.contacts.deleteMany({ tenantId, _id: { $in: docs.map((d) => d._id) } });
      if (isDuplicateKeyError(err) || (err as { code?: number }).code === 11000) return { inserted: false, conflict: true };
      throw err;
    }
  }

  async findById(tenantId: string, contactId: string): Promise<Contact | null> {
    // By _id alone, then checked here: FerretDB 1.x only uses an index for a filter that is exactly {_id}.
    const doc = await this.contacts.findOne({ _id: contactId });
    return doc && doc.tenantId === tenantId ? fromDoc(doc) : null;
  }

  async list(query: ContactQuery, page?: { page: number; pageSize: number }): Promise<{ contacts: Contact[]; total: number }> {
    const filter: Filter<ContactDoc> = { tenantId: query.tenantId };
    if (!query.includeArchived) filter.contactStatus = { $ne: ContactStatus.CONTACT_STATUS_ARCHIVED };
    if (query.contactIds && query.contactIds.length > 0) filter._id = { $in: query.contactIds };
    if (query.modifiedAfter) filter.updatedDateUtc = { $gt: query.modifiedAfter };
    if (query.searchTerm) {
      const pattern = { $regex: escapeRegex(query.searchTerm), $options: 'i' };
      filter.$or = [{ name: pattern }, { firstName: pattern }, { lastName: pattern }, { contactNumber: pattern }, { emailAddress: pattern }];
    }
    let cursor = this.contacts.find(filter).sort({ nameKey: 1, _id: 1 });
    if (page) cursor = cursor.skip((page.page - 1) * page.pageSize).limit(page.pageSize);
    const [docs, total] = await Promise.all([cursor.toArray(), page ? this.contacts.countDocuments(filter) : Promise.resolve(-1)]);
    return { contacts: docs.map(fromDoc), total: total < 0 ? docs.length : total };
  }
}

function toDoc(tenantId: string, contact: Contact): ContactDoc {
  const { contactId, validationErrors: _ignored, ...rest } = contact;
  return {
    ...rest,
    _id: contactId,
    tenantId,
    nameKey: contact.contactStatus === ContactStatus.CONTACT_STATUS_ARCHIVED ? `archived:${contactId}` : nameKey(contact.name),
  };
}

function fromDoc(doc: ContactDoc): Contact {
  const { _id, tenantId: _tenant, nameKey: _key, ...rest } = doc;
  return { ...rest, contactId: _id, addresses: rest.addresses ?? [], phones: rest.phones ?? [], validationErrors: [] };
}
