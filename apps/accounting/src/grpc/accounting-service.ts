import {
  implement,
  InvalidArgumentError,
  isRemoteError,
  NotFoundError,
  Status,
  OPERATOR,
  type AccessList,
  type Logger,
  type PromiseClient,
  type ServiceImplementation,
} from '@ledgerly/chassis';
import { AccountingServiceDefinition, ContactStatus, type Contact } from '@ledgerly/proto/accounting/v1/accounting';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { randomUUID } from 'node:crypto';
import { duplicateNameMessage, MAX_CONTACTS_PER_CALL, nameKey, newContact, validateNewContact } from '../domain/contacts.js';
import { defaultProfile } from '../domain/organisation-profile.js';
import type { ContactStore } from '../store/contacts.js';
import type { OrganisationStore } from '../store/organisations.js';
import type { PrincipalGuard } from './principal.js';

export interface AccountingDeps {
  guard: PrincipalGuard;
  organisations: OrganisationStore;
  contacts: ContactStore;
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  logger: Logger;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Who may call what. Every call also needs the user's access token; the
 * edge, or an internal tool run by an operator, may present one.
 */
export const ACCOUNTING_ACCESS: AccessList<typeof AccountingServiceDefinition> = {
  getOrganisation: ['edge', OPERATOR],
  listContacts: ['edge', OPERATOR],
  getContact: ['edge', OPERATOR],
  createContacts: ['edge', OPERATOR],
};

export function accountingService(deps: AccountingDeps): ServiceImplementation {
  const { guard, organisations, contacts } = deps;

  return implement(AccountingServiceDefinition, {
    getOrganisation: async (req, ctx) => {
      await guard.authorize(ctx, req.tenantId, 'GetOrganisation');
      const existing = await organisations.find(req.tenantId);
      if (existing) return { organisation: existing };
      // First use of the books: create their profile from the identity record.
      try {
        const { organisation } = await deps.identity.getOrganisation({ organisationId: req.tenantId });
        return { organisation: await organisations.createIfMissing(defaultProfile(organisation!)) };
      } catch (err) {
        if (isRemoteError(err, Status.NOT_FOUND)) throw new NotFoundError('No such organisation');
        throw err;
      }
    },

    listContacts: async (req, ctx) => {
      await guard.authorize(ctx, req.tenantId, 'ListContacts');
      if (req.page < 0) throw new InvalidArgumentError('page must be 1 or more');
      const pageSize = req.pageSize === 0 ? 100 : req.pageSize;
      if (pageSize < 1 || pageSize > 1000) throw new InvalidArgumentError('pageSize must be between 1 and 1000');
      const ids = req.contactIds.filter((id) => id.length > 0);
      if (ids.some((id) => !UUID.test(id))) throw new InvalidArgumentError('IDs must be contact IDs (GUIDs)');
      const query = {
        tenantId: req.tenantId,
        includeArchived: req.includeArchived,
        ...(req.searchTerm ? { searchTerm: req.searchTerm } : {}),
        ...(ids.length > 0 ? { contactIds: ids } : {}),
        ...(req.modifiedAfter ? { modifiedAfter: req.modifiedAfter } : {}),
      };
      if (req.page === 0) {
        const { contacts: list } = await contacts.list(query);
        return { contacts: list };
      }
      const { contacts: list, total } = await contacts.list(query, { page: req.page, pageSize });
      return {
        contacts: list,
        pagination: { page: req.page, pageSize, pageCount: Math.ceil(total / pageSize), itemCount: total },
      };
    },

    getContact: async (req, ctx) => {
      await guard.authorize(ctx, req.tenantId, 'GetContact');
      const contact = UUID.test(req.contactId) ? await contacts.findById(req.tenantId, req.contactId) : null;
      if (!contact) throw new NotFoundError('No such contact', 'contact_not_found');
      return { contact };
    },

    createContacts: async (req, ctx) => {
      await guard.authorize(ctx, req.tenantId, 'CreateContacts');
      if (req.contacts.length === 0) throw new InvalidArgumentError('At least one contact is required');
      if (req.contacts.length > MAX_CONTACTS_PER_CALL) {
        throw new InvalidArgumentError(`At most ${MAX_CONTACTS_PER_CALL} contacts can be created in one call`);
      }
      const now = new Date();
      const candidates = req.contacts.map((c) => newContact(c, randomUUID(), now));
      const errors = req.contacts.map(validateNewContact);
      // Active names are unique within the request and the organisation.
      const keys = candidates.map((c) => nameKey(c.name));
      const taken = await contacts.existingNameKeys(req.tenantId, keys.filter((k) => k.length > 0));
      const seen = new Set<string>();
      candidates.forEach((c, i) => {
        const key = keys[i]!;
        if (key.length === 0 || c.contactStatus !== ContactStatus.CONTACT_STATUS_ACTIVE) return;
        if (taken.has(key) || seen.has(key)) errors[i]!.push(duplicateNameMessage(c.name));
        seen.add(key);
      });
      const invalid = errors.some((e) => e.length > 0);
      if (!invalid) {
        const result = await contacts.insertAll(req.tenantId, candidates);
        if (result.inserted) {
          deps.logger.info('Contacts created', { tenantId: req.tenantId, count: candidates.length });
          return { contacts: candidates, hasValidationErrors: false };
        }
        // Lost a race for a name: report it like any other taken name.
        const nowTaken = await contacts.existingNameKeys(req.tenantId, keys);
        candidates.forEach((c, i) => {
          if (nowTaken.has(keys[i]!)) errors[i]!.push(duplicateNameMessage(c.name));
        });
      }
      return {
        hasValidationErrors: true,
        contacts: req.contacts.map(
          (input, i): Contact => ({ ...input, contactId: '', validationErrors: errors[i]!.map((message) => ({ message })) }),
        ),
      };
    },
  }, ACCOUNTING_ACCESS);
}
