import {
  AddressType,
  ContactStatus,
  PhoneType,
  type Address,
  type Contact,
  type Organisation,
  type Phone,
} from '@ledgerly/proto/accounting/v1/accounting';
import type { Connection } from '@ledgerly/proto/consent/v1/consent';
import type { DeepPartial } from '@ledgerly/chassis';

/**
 * Xero Accounting API 2.0 JSON ⇄ the accounting.v1 contract. Field names are
 * PascalCase on the wire (read case-insensitively, as Xero does); dates use
 * Xero's "/Date(ms+0000)/" form. Unset fields are left out (JSON.stringify
 * drops undefined), as Xero leaves them out.
 */

/** "/Date(1573755038314+0000)/" (or without the offset, as Xero's envelope). */
export function msDate(date: Date | undefined, offset = true): string | undefined {
  if (!date) return undefined;
  return `/Date(${date.getTime()}${offset ? '+0000' : ''})/`;
}

/** Xero's /connections timestamps: "2019-12-07T18:46:19.5165400" (UTC, 7 fraction digits). */
export function connectionDate(date: Date | undefined): string | undefined {
  if (!date) return undefined;
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$10000');
}

export function toXeroConnection(c: Connection): Record<string, unknown> {
  return {
    id: c.id,
    authEventId: c.authEventId,
    tenantId: c.tenantId,
    tenantType: c.tenantType,
    tenantName: c.tenantName,
    createdDateUtc: connectionDate(c.createdAt),
    updatedDateUtc: connectionDate(c.updatedAt),
  };
}

const enumName = <E extends Record<string, string | number>>(e: E, prefix: string, value: number): string | undefined => {
  const name = (e as Record<number, string>)[value];
  return name && value > 0 ? name.slice(prefix.length) : undefined;
};

const enumValue = (e: Record<string, string | number>, prefix: string, name: string): number | undefined => {
  const v = e[prefix + name.toUpperCase()];
  return typeof v === 'number' && v > 0 ? v : undefined;
};

export function toXeroOrganisation(o: Organisation): Record<string, unknown> {
  return {
    OrganisationID: o.organisationId,
    Name: o.name,
    LegalName: o.legalName,
    PaysTax: o.paysTax,
    Version: o.version,
    OrganisationType: o.organisationType,
    BaseCurrency: o.baseCurrency,
    CountryCode: o.countryCode,
    IsDemoCompany: o.isDemoCompany,
    OrganisationStatus: o.organisationStatus,
    FinancialYearEndDay: o.financialYearEndDay,
    FinancialYearEndMonth: o.financialYearEndMonth,
    CreatedDateUTC: msDate(o.createdDateUtc, false),
    Timezone: o.timezone,
    OrganisationEntityType: o.organisationEntityType,
    ShortCode: o.shortCode,
    Class: o.class,
    Edition: o.edition,
    Addresses: [],
    Phones: [],
    ExternalLinks: [],
    PaymentTerms: {},
  };
}

export function toXeroAddress(a: Address): Record<string, unknown> {
  return {
    AddressType: enumName(AddressType, 'ADDRESS_TYPE_', a.addressType),
    AddressLine1: a.addressLine1,
    AddressLine2: a.addressLine2,
    AddressLine3: a.addressLine3,
    AddressLine4: a.addressLine4,
    City: a.city,
    Region: a.region,
    PostalCode: a.postalCode,
    Country: a.country,
    AttentionTo: a.attentionTo,
  };
}

export function toXeroPhone(p: Phone): Record<string, unknown> {
  return {
    PhoneType: enumName(PhoneType, 'PHONE_TYPE_', p.phoneType),
    PhoneNumber: p.phoneNumber,
    PhoneAreaCode: p.phoneAreaCode,
    PhoneCountryCode: p.phoneCountryCode,
  };
}

export function toXeroContact(c: Contact): Record<string, unknown> {
  return {
    ContactID: c.contactId || undefined,
    ContactNumber: c.contactNumber,
    AccountNumber: c.accountNumber,
    ContactStatus: enumName(ContactStatus, 'CONTACT_STATUS_', c.contactStatus),
    Name: c.name,
    FirstName: c.firstName,
    LastName: c.lastName,
    CompanyNumber: c.companyNumber,
    EmailAddress: c.emailAddress,
    BankAccountDetails: c.bankAccountDetails,
    TaxNumber: c.taxNumber,
    DefaultCurrency: c.defaultCurrency,
    Website: c.website,
    Addresses: c.addresses.map(toXeroAddress),
    Phones: c.phones.map(toXeroPhone),
    UpdatedDateUTC: msDate(c.updatedDateUtc),
    ContactGroups: [],
    IsSupplier: c.isSupplier,
    IsCustomer: c.isCustomer,
    ContactPersons: [],
    HasAttachments: false,
    HasValidationErrors: c.validationErrors.length > 0,
    ...(c.validationErrors.length > 0 ? { ValidationErrors: c.validationErrors.map((e) => ({ Message: e.message })) } : {}),
  };
}

// ---------------------------------------------------------------- request bodies

/** A JSON object read with case-insensitive keys (Xero's API is case-insensitive). */
class Fields {
  private readonly byLower = new Map<string, unknown>();
  constructor(
    value: Record<string, unknown>,
    private readonly errors: string[],
    private readonly where = '',
  ) {
    for (const [k, v] of Object.entries(value)) this.byLower.set(k.toLowerCase(), v);
  }

  has(name: string): boolean {
    return this.byLower.has(name.toLowerCase());
  }

  raw(name: string): unknown {
    return this.byLower.get(name.toLowerCase());
  }

  string(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    this.errors.push(`${this.where}${name} must be a string.`);
    return undefined;
  }

  enumValue(name: string, e: Record<string, string | number>, prefix: string, allowed: string): number {
    const v = this.string(name);
    if (v === undefined || v === '') return 0;
    const value = enumValue(e, prefix, v);
    if (value === undefined) this.errors.push(`${this.where}${name} must be one of ${allowed}.`);
    return value ?? 0;
  }

  array(name: string): Record<string, unknown>[] {
    const v = this.raw(name);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((item) => !isObject(item))) {
      this.errors.push(`${this.where}${name} must be an array of objects.`);
      return [];
    }
    return v as Record<string, unknown>[];
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface ParsedContacts {
  contacts: DeepPartial<Contact>[];
  /** Per contact, what was wrong with its JSON (types, unknown enum values). */
  errors: string[][];
  raw: Record<string, unknown>[];
}

/**
 * Reads PUT/POST /Contacts bodies: {"Contacts":[…]} or a single contact
 * object, as Xero accepts. Returns undefined when the body has neither shape.
 */
export function parseContacts(body: unknown): ParsedContacts | undefined {
  if (!isObject(body)) return undefined;
  const top = new Fields(body, []);
  let items: unknown[];
  if (top.has('Contacts')) {
    const list = top.raw('Contacts');
    if (!Array.isArray(list)) return undefined;
    items = list;
  } else if (top.has('Name') || top.has('ContactID')) {
    items = [body];
  } else {
    return undefined;
  }
  const result: ParsedContacts = { contacts: [], errors: [], raw: [] };
  for (const item of items) {
    const errors: string[] = [];
    if (!isObject(item)) {
      result.contacts.push({ name: '' });
      result.errors.push(['Each contact must be a JSON object.']);
      result.raw.push({});
      continue;
    }
    const f = new Fields(item, errors);
    const contact: DeepPartial<Contact> = {
      contactStatus: f.enumValue('ContactStatus', ContactStatus, 'CONTACT_STATUS_', 'ACTIVE, ARCHIVED'),
      contactNumber: f.string('ContactNumber'),
      accountNumber: f.string('AccountNumber'),
      name: f.string('Name') ?? '',
      firstName: f.string('FirstName'),
      lastName: f.string('LastName'),
      companyNumber: f.string('CompanyNumber'),
      emailAddress: f.string('EmailAddress'),
      bankAccountDetails: f.string('BankAccountDetails'),
      taxNumber: f.string('TaxNumber'),
      defaultCurrency: f.string('DefaultCurrency'),
      addresses: f.array('Addresses').map((a, i) => {
        const af = new Fields(a, errors, `Addresses[${i}].`);
        return {
          addressType: af.enumValue('AddressType', AddressType, 'ADDRESS_TYPE_', 'POBOX, STREET'),
          addressLine1: af.string('AddressLine1'),
          addressLine2: af.string('AddressLine2'),
          addressLine3: af.string('AddressLine3'),
          addressLine4: af.string('AddressLine4'),
          city: af.string('City'),
          region: af.string('Region'),
          postalCode: af.string('PostalCode'),
          country: af.string('Country'),
          attentionTo: af.string('AttentionTo'),
        };
      }),
      phones: f.array('Phones').map((p, i) => {
        const pf = new Fields(p, errors, `Phones[${i}].`);
        return {
          phoneType: pf.enumValue('PhoneType', PhoneType, 'PHONE_TYPE_', 'DEFAULT, DDI, MOBILE, FAX, OFFICE'),
          phoneNumber: pf.string('PhoneNumber'),
          phoneAreaCode: pf.string('PhoneAreaCode'),
          phoneCountryCode: pf.string('PhoneCountryCode'),
        };
      }),
    };
    if (f.string('ContactID')) errors.push('Updating an existing contact (ContactID) is not supported yet; leave ContactID out to create one.');
    result.contacts.push(contact);
    result.errors.push(errors);
    result.raw.push(item);
  }
  return result;
}
