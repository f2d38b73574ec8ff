import { hasUnsafeText } from '@ledgerly/chassis';
import { AddressType, ContactStatus, PhoneType, type Address, type Contact, type Phone } from '@ledgerly/proto/accounting/v1/accounting';

/** At most this many contacts in one create call. */
export const MAX_CONTACTS_PER_CALL = 500;

/** The key that must be unique among an organisation's active contacts (Xero's rule). */
export function nameKey(name: string): string {
  return name.trim().toLowerCase();
}

export function duplicateNameMessage(name: string): string {
  return `The contact name ${name.trim()} is already assigned to another contact. The contact name must be unique across all active contacts.`;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

type Limits<T> = Partial<Record<keyof T, number>>;

const CONTACT_LIMITS: Limits<Contact> = {
  contactNumber: 50,
  accountNumber: 50,
  name: 255,
  firstName: 255,
  lastName: 255,
  companyNumber: 50,
  emailAddress: 255,
  taxNumber: 50,
  bankAccountDetails: 255,
  website: 255,
};

const ADDRESS_LIMITS: Limits<Address> = {
  addressLine1: 500,
  addressLine2: 500,
  addressLine3: 500,
  addressLine4: 500,
  city: 255,
  region: 255,
  postalCode: 50,
  country: 50,
  attentionTo: 255,
};

const PHONE_LIMITS: Limits<Phone> = { phoneNumber: 50, phoneAreaCode: 10, phoneCountryCode: 20 };

const FIELD_NAMES: Record<string, string> = {
  contactNumber: 'ContactNumber',
  accountNumber: 'AccountNumber',
  name: 'Name',
  firstName: 'FirstName',
  lastName: 'LastName',
  companyNumber: 'CompanyNumber',
  emailAddress: 'EmailAddress',
  taxNumber: 'TaxNumber',
  bankAccountDetails: 'BankAccountDetails',
  website: 'Website',
  addressLine1: 'AddressLine1',
  addressLine2: 'AddressLine2',
  addressLine3: 'AddressLine3',
  addressLine4: 'AddressLine4',
  city: 'City',
  region: 'Region',
  postalCode: 'PostalCode',
  country: 'Country',
  attentionTo: 'AttentionTo',
  phoneNumber: 'PhoneNumber',
  phoneAreaCode: 'PhoneAreaCode',
  phoneCountryCode: 'PhoneCountryCode',
};

/** Lengths, and no control or bidirectional formatting characters in any text field. */
function checkLengths<T extends object>(value: T, limits: Limits<T>, errors: string[], where = ''): void {
  for (const [key, max] of Object.entries(limits) as Array<[keyof T & string, number]>) {
    const v = value[key];
    if (typeof v !== 'string') continue;
    const field = `${where}${FIELD_NAMES[key] ?? key}`;
    if (v.length > max) errors.push(`${field} must not be more than ${max} characters long.`);
    if (hasUnsafeText(v)) errors.push(`${field} must not contain control characters or bidirectional formatting characters.`);
  }
}

/** Xero's validation rules for a new contact; the messages are Xero's where Xero has one. */
export function validateNewContact(contact: Contact): string[] {
  const errors: string[] = [];
  if (!contact.name || contact.name.trim().length === 0) errors.push('The contact name must be specified.');
  checkLengths(contact, CONTACT_LIMITS, errors);
  if (contact.emailAddress && !EMAIL.test(contact.emailAddress.trim())) errors.push('Email address must be valid.');
  if (contact.contactStatus === ContactStatus.CONTACT_STATUS_GDPRREQUEST) {
    errors.push('A contact cannot be created with the status GDPRREQUEST.');
  }
  if (contact.addresses.length > 2) errors.push('A contact can have at most one POBOX and one STREET address.');
  const addressTypes = new Set<AddressType>();
  contact.addresses.forEach((address, i) => {
    if (address.addressType === AddressType.ADDRESS_TYPE_UNSPECIFIED) errors.push(`Addresses[${i}].AddressType must be POBOX or STREET.`);
    else if (addressTypes.has(address.addressType)) errors.push(`Addresses[${i}]: only one address of each AddressType is allowed.`);
    addressTypes.add(address.addressType);
    checkLengths(address, ADDRESS_LIMITS, errors, `Addresses[${i}].`);
  });
  if (contact.phones.length > 5) errors.push('A contact can have at most one phone of each PhoneType.');
  const phoneTypes = new Set<PhoneType>();
  contact.phones.forEach((phone, i) => {
    if (phone.phoneType === PhoneType.PHONE_TYPE_UNSPECIFIED) errors.push(`Phones[${i}].PhoneType must be DEFAULT, DDI, MOBILE, FAX or OFFICE.`);
    else if (phoneTypes.has(phone.phoneType)) errors.push(`Phones[${i}]: only one phone of each PhoneType is allowed.`);
    phoneTypes.add(phone.phoneType);
    checkLengths(phone, PHONE_LIMITS, errors, `Phones[${i}].`);
  });
  return errors;
}

/** A new contact as stored: trimmed, with server-set fields. */
export function newContact(input: Contact, contactId: string, now: Date): Contact {
  const trimmed = (v: string | undefined) => (v === undefined ? undefined : v.trim());
  return {
    ...input,
    contactId,
    name: input.name.trim(),
    firstName: trimmed(input.firstName),
    lastName: trimmed(input.lastName),
    emailAddress: trimmed(input.emailAddress),
    contactStatus:
      input.contactStatus === ContactStatus.CONTACT_STATUS_ARCHIVED ? ContactStatus.CONTACT_STATUS_ARCHIVED : ContactStatus.CONTACT_STATUS_ACTIVE,
    // Set by the ledger from invoices and bills, never by the caller (Xero).
    isSupplier: false,
    isCustomer: false,
    updatedDateUtc: now,
    validationErrors: [],
  };
}
