import { AddressType, ContactStatus, PhoneType, type Contact } from '@ledgerly/proto/accounting/v1/accounting';
import type { Context } from 'koa';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectionDate, msDate, parseContacts, toXeroContact } from '../src/api/xero-json.js';
import { BodyTimeout, ClientClosedRequest, readBody } from '../src/http/body.js';
import { InvalidClient, InvalidRequest } from '../src/http/errors.js';
import { escapeHtml, html } from '../src/http/html.js';
import { readClientAuthentication } from '../src/oauth/client-auth.js';
import { discoveryDocument } from '../src/oauth/discovery.js';
import { consentPage } from '../src/views/consent-page.js';

const ENDPOINT = 'http://localhost:3000/token';
const ctxWith = (authorization?: string) => ({ get: (name: string) => (name.toLowerCase() === 'authorization' ? (authorization ?? '') : '') }) as unknown as Context;
/** RFC 6749 §2.3.1: form-urlencode each part, then base64 "id:secret". */
const basic = (id: string, secret: string) => {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
};

describe('client authentication parsing (RFC 6749 §2.3.1)', () => {
  it('decodes form-urlencoded ids and secrets with +, %, :, spaces and non-ASCII', () => {
    for (const [id, secret] of [
      ['client', 'a+b%c:d e'],
      ['ç lient:1', 'sécret ☃ ✓'],
      ['ABC', '%%%'],
    ]) {
      expect(readClientAuthentication(ctxWith(basic(id!, secret!)), new Map(), ENDPOINT)).toEqual({ clientId: id, clientSecret: secret, method: 'client_secret_basic', clientAssertion: '', endpoint: ENDPOINT });
    }
  });

  it('refuses a malformed % sequence and a header that is not Basic with invalid_client and a challenge', () => {
    for (const header of [`Basic ${Buffer.from('id:%E0%A4%A').toString('base64')}`, 'Bearer abc', `Basic ${Buffer.from('no-colon').toString('base64')}`, 'Basic !!!']) {
      const err = (() => {
        try {
          readClientAuthentication(ctxWith(header), new Map(), ENDPOINT);
        } catch (e) {
          return e;
        }
      })();
      expect(err, header).toBeInstanceOf(InvalidClient);
      expect((err as InvalidClient).challenge).toBe(true);
      expect((err as InvalidClient).status).toBe(401);
    }
  });

  it('refuses two methods at once, and a body client_id that differs from Basic', () => {
    expect(() => readClientAuthentication(ctxWith(basic('a', 'b')), new Map([['client_secret', 'b']]), ENDPOINT)).toThrow(InvalidRequest);
    expect(() => readClientAuthentication(ctxWith(basic('a', 'b')), new Map([['client_id', 'other']]), ENDPOINT)).toThrow(InvalidRequest);
  });

  it('reads private_key_jwt (RFC 7523 §2.2): the client is the assertion\'s sub, and nothing else may be mixed in', () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const assertion = `${b64({ alg: 'ES256' })}.${b64({ iss: 'C1', sub: 'C1', aud: ENDPOINT })}.sig`;
    const form = (extra: Array<[string, string]> = []) =>
      new Map<string, string>([['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'], ['client_assertion', assertion], ...extra]);
    expect(readClientAuthentication(ctxWith(), form(), ENDPOINT)).toEqual({ clientId: 'C1', clientSecret: '', method: 'private_key_jwt', clientAssertion: assertion, endpoint: ENDPOINT });
    expect(readClientAuthentication(ctxWith(), form([['client_id', 'C1']]), ENDPOINT).clientId).toBe('C1');
    expect(() => readClientAuthentication(ctxWith(), form([['client_id', 'C2']]), ENDPOINT)).toThrow(InvalidClient);
    expect(() => readClientAuthentication(ctxWith(), form([['client_secret', 'x']]), ENDPOINT)).toThrow(InvalidRequest);
    expect(() => readClientAuthentication(ctxWith(basic('C1', 'x')), form(), ENDPOINT)).toThrow(InvalidRequest);
    expect(() => readClientAuthentication(ctxWith(), new Map([['client_assertion_type', 'urn:other'], ['client_assertion', assertion]]), ENDPOINT)).toThrow(InvalidRequest);
    expect(() => readClientAuthentication(ctxWith(), form().set('client_assertion', 'not-a-jwt'), ENDPOINT)).toThrow(InvalidClient);
  });

  it('reads client_secret_post and public clients (none)', () => {
    expect(readClientAuthentication(ctxWith(), new Map([['client_id', 'a'], ['client_secret', 'b']]), ENDPOINT)).toEqual({ clientId: 'a', clientSecret: 'b', method: 'client_secret_post', clientAssertion: '', endpoint: ENDPOINT });
    expect(readClientAuthentication(ctxWith(), new Map([['client_id', 'a']]), ENDPOINT)).toEqual({ clientId: 'a', clientSecret: '', method: 'none', clientAssertion: '', endpoint: ENDPOINT });
    expect(() => readClientAuthentication(ctxWith(), new Map(), ENDPOINT)).toThrow(InvalidClient);
  });
});

describe('Xero JSON', () => {
  const contact: Contact = {
    contactId: '3ff6d40c-af9a-40a3-89ce-3c1556a25591',
    contactStatus: ContactStatus.CONTACT_STATUS_ACTIVE,
    name: 'Foo',
    emailAddress: 'a@b.co',
    addresses: [{ addressType: AddressType.ADDRESS_TYPE_POBOX, city: 'Palo Alto' }],
    phones: [{ phoneType: PhoneType.PHONE_TYPE_MOBILE, phoneNumber: '555-1212' }],
    isSupplier: false,
    isCustomer: false,
    updatedDateUtc: new Date(1551399321043),
    validationErrors: [],
  };

  it("writes PascalCase fields, Xero's enum names and /Date()/ timestamps, leaving unset fields out", () => {
    const json = JSON.parse(JSON.stringify(toXeroContact(contact))) as Record<string, unknown>;
    expect(json).toMatchObject({
      ContactID: contact.contactId,
      ContactStatus: 'ACTIVE',
      Name: 'Foo',
      EmailAddress: 'a@b.co',
      Addresses: [{ AddressType: 'POBOX', City: 'Palo Alto' }],
      Phones: [{ PhoneType: 'MOBILE', PhoneNumber: '555-1212' }],
      UpdatedDateUTC: '/Date(1551399321043+0000)/',
      HasValidationErrors: false,
    });
    expect(json).not.toHaveProperty('FirstName');
    expect(json).not.toHaveProperty('ValidationErrors');
    expect(msDate(new Date(5), false)).toBe('/Date(5)/');
    expect(connectionDate(new Date('2019-12-07T18:46:19.516Z'))).toBe('2019-12-07T18:46:19.5160000');
  });

  it('reads bodies case-insensitively, as a list or a single contact', () => {
    const list = parseContacts({ contacts: [{ name: 'A', emailaddress: 'a@b.co', PHONES: [{ phonetype: 'fax', PhoneNumber: 1 }] }] })!;
    expect(list.errors).toEqual([[]]);
    expect(list.contacts[0]).toMatchObject({ name: 'A', emailAddress: 'a@b.co', phones: [{ phoneType: PhoneType.PHONE_TYPE_FAX, phoneNumber: '1' }] });
    expect(parseContacts({ Name: 'Single' })!.contacts[0]!.name).toBe('Single');
    expect(parseContacts([{ Name: 'x' }])).toBeUndefined();
    expect(parseContacts({ Contacts: 'nope' })).toBeUndefined();
    expect(parseContacts({ Invoices: [] })).toBeUndefined();
  });

  it('reports wrong types and unknown enum values per contact', () => {
    const parsed = parseContacts({ Contacts: [{ Name: ['x'], ContactStatus: 'DELETED', Addresses: 'street' }, 'not an object'] })!;
    expect(parsed.errors[0]).toEqual(['ContactStatus must be one of ACTIVE, ARCHIVED.', 'Name must be a string.', 'Addresses must be an array of objects.']);
    expect(parsed.errors[1]).toEqual(['Each contact must be a JSON object.']);
  });
});

describe('pages', () => {
  it('escapes everything interpolated, so an app name cannot inject markup', () => {
    expect(escapeHtml(`<script>"&'\``)).toBe('&lt;script&gt;&quot;&amp;&#39;&#96;');
    const page = consentPage({
      platformName: 'Ledgerly',
      appName: '<img src=x onerror=alert(1)>',
      flowId: 'f"><script>',
      csrfToken: 'c',
      userName: 'U',
      userEmail: 'u@x',
      permissions: ['View your contacts'],
      organisations: [
        { id: 'o1', name: 'Org <b>1</b>', role: 'Adviser', checked: true, connected: false },
        { id: 'o2', name: 'Org 2', role: 'Adviser', checked: false, connected: true },
      ],
    });
    expect(page).not.toContain('<img src=x');
    expect(page).not.toContain('<script>');
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(page).toContain('<label class="org" for="org-o1"><input type="checkbox" id="org-o1" name="organisation" value="o1" checked><span><bdi>Org &lt;b&gt;1&lt;/b&gt;</bdi></span>');
    expect(page).toContain('<button type="submit" name="decision" value="deny">Deny</button>');
    expect(page).toContain('<button class="primary" type="submit" name="decision" value="allow">Allow access</button>');
    // An organisation already connected is shown as such, and is not a field of the form.
    expect(page).toContain('<input type="checkbox" id="org-o2" value="o2" checked disabled><span><bdi>Org 2</bdi></span><span class="role">Already connected</span>');
    expect(String(html`${html`<b>${'<i>'}</b>`}`)).toBe('<b>&lt;i&gt;</b>');
  });
});

describe('discovery', () => {
  it('describes exactly what is supported', () => {
    const doc = discoveryDocument('https://id.example');
    expect(doc).toMatchObject({
      issuer: 'https://id.example',
      authorization_endpoint: 'https://id.example/authorize',
      token_endpoint: 'https://id.example/token',
      jwks_uri: 'https://id.example/.well-known/jwks.json',
      userinfo_endpoint: 'https://id.example/userinfo',
      end_session_endpoint: 'https://id.example/session/end',
      revocation_endpoint: 'https://id.example/revoke',
      introspection_endpoint: 'https://id.example/introspect',
      pushed_authorization_request_endpoint: 'https://id.example/par',
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
      code_challenge_methods_supported: ['S256'],
      id_token_signing_alg_values_supported: ['ES256'],
      dpop_signing_alg_values_supported: expect.arrayContaining(['ES256', 'EdDSA']),
      authorization_response_iss_parameter_supported: true,
    });
    // Never an algorithm without a key (none) or a shared one (HMAC), for anything.
    for (const [name, value] of Object.entries(doc)) {
      if (name.endsWith('alg_values_supported')) expect(value, name).not.toEqual(expect.arrayContaining([expect.stringMatching(/^(none|HS\d+)$/)]));
    }
    expect(doc['scopes_supported']).toEqual(expect.arrayContaining(['openid', 'offline_access', 'accounting.contacts', 'accounting.reports.profitandloss.read']));
  });
});

describe('request bodies', () => {
  /** A real HTTP server whose handler reads the body as the edge does; resolves with what readBody did. */
  async function readOver(send: (socket: Socket) => void, timeoutMs: number): Promise<unknown> {
    let done!: (v: unknown) => void;
    const outcome = new Promise((resolve) => (done = resolve));
    const server = createServer((req, res) => {
      const ctx = { req, get: (n: string) => String(req.headers[n.toLowerCase()] ?? ''), set: () => undefined } as unknown as Context;
      readBody(ctx, 1024, timeoutMs).then(done, done).finally(() => res.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    send(socket);
    try {
      return await outcome;
    } finally {
      socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }
  const head = 'POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n';

  it('gives up on a body that does not arrive in time (408), instead of holding the request open', async () => {
    const started = Date.now();
    const outcome = await readOver((s) => s.write(`${head}a=b&c`), 150);
    expect(outcome).toBeInstanceOf(BodyTimeout);
    expect((outcome as BodyTimeout).status).toBe(408);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('tells a client that hung up mid-body from a failure (no 500, no error log)', async () => {
    const outcome = await readOver((s) => {
      s.write(`${head}a=b`);
      setTimeout(() => s.destroy(), 50);
    }, 5000);
    expect(outcome).toBeInstanceOf(ClientClosedRequest);
    expect((outcome as ClientClosedRequest).expose).toBe(true);
  });
});
