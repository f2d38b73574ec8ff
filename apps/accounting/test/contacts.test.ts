// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { AddressType, Contact, ContactStatus, PhoneType, type Address, type Phone } from '@ledgerly/proto/accounting/v1/accounting';
import { MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { duplicateNameMessage, newContact, validateNewContact } from '../src/domain/contacts.js';
import { ContactStore } from '../src/store/contacts.js';

type ContactInput = Partial<Omit<Contact, 'addresses' | 'phones'>> & {
  addresses?: Partial<Address>[];
  phones?: Partial<Phone>[];
};
const contact = (input: ContactInput) => Contact.fromPartial(input);

describe('validateNewContact (Xero rules and wording)', () => {
  it('accepts a complete, valid contact', () => {
    expect(
      validateNewContact(
        contact({
          name: 'ABC Limited',
          emailAddress: 'accounts@abc.example',
          addresses: [{ addressType: AddressType.ADDRESS_TYPE_POBOX, city: 'Wellington' }, { addressType: AddressType.ADDRESS_TYPE_STREET }],
          phones: [{ phoneType: PhoneType.PHONE_TYPE_DEFAULT, phoneNumber: '1234567' }, { phoneType: PhoneType.PHONE_TYPE_MOBILE }],
        }),
      ),
    ).toEqual([]);
  });

  it('requires a name and refuses a GDPRREQUEST status and a bad email', () => {
    expect(validateNewContact(contact({ name: '' }))).toEqual(['The contact name must be specified.']);
    expect(validateNewContact(contact({ name: '   ' }))).toEqual(['The contact name must be specified.']);
    expect(validateNewContact(contact({ name: 'A', emailAddress: 'not-an-email' }))).toEqual(['Email address must be valid.']);
    expect(
      validateNewContact(
        contact({
          name: 'A',
          contactStatus: ContactStatus.CONTACT_STATUS_GDPRREQUEST,
        }),
      ),
    ).toEqual(['A contact cannot be created with the status GDPRREQUEST.']);
  });

  it('names the field of every value that is too long, in Xero’s words', () => {
    expect(
      validateNewContact(
        contact({
          name: 'n'.repeat(256),
          contactNumber: 'c'.repeat(51),
          website: 'w'.repeat(256),
          addresses: [
            {
              addressType: AddressType.ADDRESS_TYPE_STREET,
              city: 'x'.repeat(256),
              postalCode: 'p'.repeat(51),
            },
          ],
          phones: [
            {
              phoneType: PhoneType.PHONE_TYPE_DEFAULT,
              phoneNumber: '1'.repeat(51),
              phoneAreaCode: '1'.repeat(11),
            },
          ],
        }),
      ),
    ).toEqual([
      'ContactNumber must not be more than 50 characters long.',
      'Name must not be more than 255 characters long.',
      'Website must not be more than 255 characters long.',
      'Addresses[0].City must not be more than 255 characters long.',
      'Addresses[0].PostalCode must not be more than 50 characters long.',
      'Phones[0].PhoneNumber must not be more than 50 characters long.',
      'Phones[0].PhoneAreaCode must not be more than 10 characters long.',
    ]);
    // The limits themselves are allowed.
    expect(validateNewContact(contact({ name: 'n'.repeat(255), contactNumber: 'c'.repeat(50) }))).toEqual([]);
  });

  it('allows one address and one phone of each type, each with a type', () => {
    expect(
      validateNewContact(
        contact({
          name: 'A',
          addresses: [
            { addressType: AddressType.ADDRESS_TYPE_UNSPECIFIED },
            { addressType: AddressType.ADDRESS_TYPE_STREET },
            { addressType: AddressType.ADDRESS_TYPE_STREET },
          ],
          phones: [{ phoneType: PhoneType.PHONE_TYPE_UNSPECIFIED }, { phoneType: PhoneType.PHONE_TYPE_FAX }, { phoneType: PhoneType.PHONE_TYPE_FAX }],
        }),
      ),
    ).toEqual([
      'A contact can have at most one POBOX and one STREET address.',
      'Addresses[0].AddressType must be POBOX or STREET.',
      'Addresses[2]: only one address of each AddressType is allowed.',
      'Phones[0].PhoneType must be DEFAULT, DDI, MOBILE, FAX or OFFICE.',
      'Phones[2]: only one phone of each PhoneType is allowed.',
    ]);
  });

  it('words a taken name as Xero does', () => {
    expect(duplicateNameMessage('  ABC Limited ')).toBe(
      'The contact name ABC Limited is already assigned to another contact. The contact name must be unique across all active contacts.',
    );
  });

  it('newContact trims, sets the server fields, and keeps only ACTIVE or ARCHIVED', () => {
    const now = new Date('2026-01-02T03:04:05Z');
    const made = newContact(
      contact({
        name: '  Bob  ',
        firstName: ' Bob ',
        emailAddress: ' bob@example.com ',
        isCustomer: true,
        isSupplier: true,
      }),
      'id-1',
      now,
    );
    expect(made).toMatchObject({
      contactId: 'id-1',
      name: 'Bob',
      firstName: 'Bob',
      emailAddress: 'bob@example.com',
      contactStatus: ContactStatus.CONTACT_STATUS_ACTIVE,
      isCustomer: false,
      isSupplier: false,
      updatedDateUtc: now,
    });
    expect(
      newContact(
        contact({
          name: 'X',
          contactStatus: ContactStatus.CONTACT_STATUS_ARCHIVED,
        }),
        'id-2',
        now,
      ).contactStatus,
    ).toBe(ContactStatus.CONTACT_STATUS_ARCHIVED);
  });
});

describe('ContactStore (real Mongo)', () => {
  let mongo: MongoClient;
  let db: Db;
  let store: ContactStore;

  beforeAll(async () => {
    mongo = new MongoClient(inject('mongoUrl'));
    db = mongo.db(`accounting_contacts_test_${Date.now()}`);
    store = new ContactStore(db);
    await store.ensureIndexes();
  });
  afterAll(async () => {
    await mongo?.close();
  });

  const make = (name: string, extra: ContactInput = {}, updated = new Date()) => newContact(contact({ name, ...extra }), randomUUID(), updated);
  const names = (list: Contact[]) => list.map((c) => c.name);

  it('keeps active names unique per tenant, case-insensitively; another tenant or an archived contact may reuse a name', async () => {
    const tenant = randomUUID();
    const acme = make('Acme Ltd');
    expect(await store.insertAll(tenant, [acme])).toEqual({ inserted: true });
    expect(await store.insertAll(tenant, [make('  ACME ltd ')])).toEqual({
      inserted: false,
      conflict: true,
    });
    expect(await store.existingNameKeys(tenant, ['acme ltd', 'other'])).toEqual(new Set(['acme ltd']));

    expect(await store.insertAll(randomUUID(), [make('Acme Ltd')])).toEqual({
      inserted: true,
    });
    expect(
      await store.insertAll(tenant, [
        make('Acme Ltd', {
          contactStatus: ContactStatus.CONTACT_STATUS_ARCHIVED,
        }),
      ]),
    ).toEqual({ inserted: true });

    const found = await store.findById(tenant, acme.contactId);
    expect(found).toMatchObject({
      contactId: acme.contactId,
      name: 'Acme Ltd',
      validationErrors: [],
      addresses: [],
      phones: [],
    });
    expect(found).not.toHaveProperty('nameKey');
    expect(found).not.toHaveProperty('tenantId');
    // Another tenant cannot read it by id.
    expect(await store.findById(randomUUID(), acme.contactId)).toBeNull();
  });

  it('insertAll is all-or-nothing when one name is taken', async () => {
    const tenant = randomUUID();
    await store.insertAll(tenant, [make('Taken Ltd')]);
    const batch = [make('New One'), make('New Two'), make('taken ltd'), make('New Three')];
    expect(await store.insertAll(tenant, batch)).toEqual({
      inserted: false,
      conflict: true,
    });
    expect(await db.collection('contacts').countDocuments({ tenantId: tenant })).toBe(1);
    for (const c of batch) expect(await store.findById(tenant, c.contactId)).toBeNull();
    // A duplicate inside the batch itself is refused the same way.
    expect(await store.insertAll(tenant, [make('Twin'), make('TWIN')])).toEqual({ inserted: false, conflict: true });
    expect(await db.collection('contacts').countDocuments({ tenantId: tenant })).toBe(1);
  });

  it('list searches names, people and emails case-insensitively, with regex characters taken literally', async () => {
    const tenant = randomUUID();
    await store.insertAll(tenant, [
      make('a.b Traders'),
      make('axb Traders'),
      make('Plain Co', {
        firstName: 'Zelda',
        emailAddress: 'books@plain.example',
      }),
      make('Star* (Holdings)'),
    ]);
    const search = async (searchTerm: string) =>
      names(
        (
          await store.list({
            tenantId: tenant,
            includeArchived: false,
            searchTerm,
          })
        ).contacts,
      );
    expect(await search('a.b')).toEqual(['a.b Traders']);
    expect(await search('A.B')).toEqual(['a.b Traders']);
    expect(await search('traders')).toEqual(['a.b Traders', 'axb Traders']);
    expect(await search('zelda')).toEqual(['Plain Co']);
    expect(await search('@PLAIN.example')).toEqual(['Plain Co']);
    expect(await search('star* (')).toEqual(['Star* (Holdings)']);
    expect(await search('.*')).toEqual([]);
    expect(await search('[')).toEqual([]);
  });

  it('list leaves archived contacts out unless asked, and filters by IDs within the tenant', async () => {
    const tenant = randomUUID();
    const active = make('Active Co');
    const archived = make('Archived Co', {
      contactStatus: ContactStatus.CONTACT_STATUS_ARCHIVED,
    });
    const elsewhere = make('Elsewhere Co');
    await store.insertAll(tenant, [active, archived]);
    await store.insertAll(randomUUID(), [elsewhere]);

    expect(names((await store.list({ tenantId: tenant, includeArchived: false })).contacts)).toEqual(['Active Co']);
    expect(names((await store.list({ tenantId: tenant, includeArchived: true })).contacts).sort()).toEqual(['Active Co', 'Archived Co']);
    const byIds = await store.list({
      tenantId: tenant,
      includeArchived: true,
      contactIds: [archived.contactId, elsewhere.contactId],
    });
    expect(byIds.contacts.map((c) => c.contactId)).toEqual([archived.contactId]);
  });

  it('pages in name order with the total of the whole filtered list, and filters by modification time', async () => {
    const tenant = randomUUID();
    const base = Date.now() - 60_000;
    const all = ['Golf', 'alpha', 'Echo', 'bravo', 'Foxtrot', 'Charlie', 'delta'].map((n, i) => make(n, {}, new Date(base + i * 1000)));
    await store.insertAll(tenant, all);
    const query = { tenantId: tenant, includeArchived: false };
    const page = async (p: number, pageSize = 3) => store.list(query, { page: p, pageSize });

    expect(await page(1)).toMatchObject({ total: 7 });
    expect(names((await page(1)).contacts)).toEqual(['alpha', 'bravo', 'Charlie']);
    expect(names((await page(2)).contacts)).toEqual(['delta', 'Echo', 'Foxtrot']);
    expect(names((await page(3)).contacts)).toEqual(['Golf']);
    expect(await page(4)).toEqual({ contacts: [], total: 7 });
    // Without paging: everything, and the count of what was returned.
    expect((await store.list(query)).total).toBe(7);

    const filtered = await store.list({ ...query, searchTerm: 'o' }, { page: 1, pageSize: 2 });
    expect(filtered.total).toBe(4); // bravo, Echo, Foxtrot, Golf
    expect(names(filtered.contacts)).toEqual(['bravo', 'Echo']);

    const recent = await store.list({
      ...query,
      modifiedAfter: new Date(base + 4500),
    });
    expect(names(recent.contacts)).toEqual(['Charlie', 'delta']);
  });
});
