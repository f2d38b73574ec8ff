import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readJson } from '../http/body.js';
import { ApiPostDataInvalid, ApiValidationError, badRequest } from '../http/errors.js';
import { caller } from './bearer.js';
import { msDate, parseContacts, toXeroContact, toXeroOrganisation } from './xero-json.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The gRPC call options that carry the caller's token to the accounting service. */
function asCaller(ctx: Context) {
  return { metadata: { authorization: caller(ctx).authorization } };
}

/** Xero's response envelope: Id, Status, ProviderName (the calling app), DateTimeUTC. */
async function envelope(deps: EdgeDeps, ctx: Context, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const client = await deps.clients.find(caller(ctx).claims.clientId).catch(() => null);
  return {
    Id: String(ctx.state['requestId'] ?? ''),
    Status: 'OK',
    ProviderName: client?.name ?? '',
    DateTimeUTC: msDate(new Date(), false),
    ...body,
  };
}

/** GET /api.xro/2.0/Organisation */
export function getOrganisation(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const { organisation } = await deps.accounting.getOrganisation({ tenantId: caller(ctx).tenantId! }, asCaller(ctx));
    ctx.body = await envelope(deps, ctx, { Organisations: [toXeroOrganisation(organisation!)] });
  };
}

/** GET /api.xro/2.0/Contacts[?page&pageSize&includeArchived&searchTerm&IDs] (If-Modified-Since honoured). */
export function listContacts(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const q = ctx.query;
    const one = (name: string) => {
      const v = q[name];
      // A repeated parameter is ambiguous: say so rather than pick one or ignore both.
      if (Array.isArray(v)) throw badRequest(`${name} is repeated; send it once`);
      return v;
    };
    if (one('where') !== undefined || one('order') !== undefined) {
      throw badRequest('The where and order parameters are not supported yet; use searchTerm, IDs, includeArchived and page.');
    }
    const int = (name: string) => {
      const v = one(name);
      if (v === undefined) return 0;
      if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw badRequest(`${name} must be a positive whole number`);
      return Number(v);
    };
    const bool = (name: string) => {
      const v = one(name)?.toLowerCase();
      if (v === undefined || v === 'false') return false;
      if (v === 'true') return true;
      throw badRequest(`${name} must be true or false`);
    };
    const ids = (one('IDs') ?? one('ids') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (ids.some((id) => !UUID.test(id))) throw badRequest('IDs must be a comma-separated list of ContactIDs');
    const since = ctx.get('if-modified-since');
    const modifiedAfter = since ? new Date(since) : undefined;
    if (modifiedAfter && Number.isNaN(modifiedAfter.getTime())) throw badRequest('If-Modified-Since must be an HTTP date');
    const res = await deps.accounting.listContacts(
      {
        tenantId: caller(ctx).tenantId!,
        page: int('page'),
        pageSize: int('pageSize'),
        includeArchived: bool('includeArchived'),
        searchTerm: one('searchTerm') ?? '',
        contactIds: ids,
        ...(modifiedAfter ? { modifiedAfter } : {}),
      },
      asCaller(ctx),
    );
    ctx.body = await envelope(deps, ctx, {
      ...(res.pagination ? { pagination: res.pagination } : {}),
      Contacts: res.contacts.map(toXeroContact),
    });
  };
}

/** GET /api.xro/2.0/Contacts/{ContactID} */
export function getContact(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const contactId = String(ctx.params['id'] ?? '');
    if (!UUID.test(contactId)) throw badRequest('ContactID must be a GUID (looking contacts up by ContactNumber is not supported yet)');
    const { contact } = await deps.accounting.getContact({ tenantId: caller(ctx).tenantId!, contactId }, asCaller(ctx));
    ctx.body = await envelope(deps, ctx, { Contacts: [toXeroContact(contact!)] });
  };
}

/** PUT and POST /api.xro/2.0/Contacts: create; all or nothing, with Xero's ValidationException. */
export function createContacts(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const parsed = parseContacts(await readJson(ctx));
    if (!parsed) throw new ApiPostDataInvalid('The body must be {"Contacts":[{"Name":"…"}, …]}');
    if (parsed.contacts.length === 0) throw new ApiPostDataInvalid('Contacts must hold at least one contact');
    if (parsed.errors.some((e) => e.length > 0)) {
      throw new ApiValidationError(
        parsed.raw.map((raw, i) => ({ ...raw, HasValidationErrors: parsed.errors[i]!.length > 0, ValidationErrors: parsed.errors[i]!.map((Message) => ({ Message })) })),
      );
    }
    const res = await deps.accounting.createContacts({ tenantId: caller(ctx).tenantId!, contacts: parsed.contacts }, asCaller(ctx));
    if (res.hasValidationErrors) {
      throw new ApiValidationError(res.contacts.map((c) => toXeroContact(c)));
    }
    ctx.body = await envelope(deps, ctx, { Contacts: res.contacts.map(toXeroContact) });
  };
}
