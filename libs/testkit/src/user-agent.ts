/**
 * A minimal browser for tests that drive the login and consent pages over
 * plain HTTP: it keeps cookies per host, follows redirects one hop at a time,
 * and reads the forms' hidden fields.
 */
export class UserAgent {
  private readonly jar = new Map<string, Map<string, string>>();

  cookie(host: string, name: string): string | undefined {
    return this.jar.get(host)?.get(name);
  }

  async request(url: string | URL, init: { method?: string; form?: URLSearchParams } = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers();
    const cookies = this.jar.get(target.host);
    if (cookies && cookies.size > 0) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    if (init.form) headers.set('content-type', 'application/x-www-form-urlencoded');
    const res = await fetch(target, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      ...(init.form ? { body: init.form.toString() } : {}),
      redirect: 'manual',
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const jar = this.jar.get(target.host) ?? new Map<string, string>();
      const value = pair!.slice(eq + 1);
      if (value === '' || /max-age=0/i.test(line)) jar.delete(pair!.slice(0, eq));
      else jar.set(pair!.slice(0, eq), value);
      this.jar.set(target.host, jar);
    }
    return res;
  }

  /** Follows redirects while they stay on `origin`; returns the last response and the URL it left for, if any. */
  async follow(start: string | URL, origin: string, init: { form?: URLSearchParams } = {}): Promise<{ res: Response; url: URL; left?: URL }> {
    let url = new URL(start);
    let res = await this.request(url, init);
    for (let hops = 0; hops < 10 && res.status >= 300 && res.status < 400; hops++) {
      const next = new URL(res.headers.get('location')!, url);
      if (next.origin !== origin) return { res, url, left: next };
      url = next;
      res = await this.request(url);
    }
    return { res, url };
  }
}

/** The value of a hidden (or any) input, by name. */
export function inputValue(html: string, name: string): string | undefined {
  const match = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(html);
  return match?.[1];
}

export interface InteractiveAuthorization {
  email: string;
  password: string;
  /** Organisation ids to tick on the consent page. */
  organisations: string[];
  decision?: 'allow' | 'deny';
}

/**
 * What a person does in the browser: open the authorization URL, sign in on
 * the platform's page (unless this browser is signed in already and the
 * platform goes straight to consent), tick organisations, press Allow (or
 * Deny). Returns the pages seen and the URL the platform sent the browser
 * back to.
 */
export async function authorizeInteractively(
  ua: UserAgent,
  authorizationUrl: URL,
  input: InteractiveAuthorization,
): Promise<{ loginPage: string; consentPage: string; callback: URL }> {
  const origin = authorizationUrl.origin;
  let { res, url } = await ua.follow(authorizationUrl, origin);
  let loginPage = '';
  if (res.status === 200 && url.pathname === '/login') {
    loginPage = await res.text();
    const flow = inputValue(loginPage, 'flow')!;
    const csrf = inputValue(loginPage, 'csrf')!;
    ({ res, url } = await ua.follow(new URL('/login', origin), origin, {
      form: new URLSearchParams({ flow, csrf, email: input.email, password: input.password }),
    }));
  }
  if (res.status !== 200 || url.pathname !== '/consent') throw new Error(`Expected the login or consent page, got ${res.status} ${url.pathname}: ${await res.text()}`);
  const consentPage = await res.text();
  const form = new URLSearchParams({ flow: inputValue(consentPage, 'flow')!, csrf: inputValue(consentPage, 'csrf')!, decision: input.decision ?? 'allow' });
  for (const id of input.organisations) form.append('organisation', id);
  const done = await ua.follow(new URL('/consent', origin), origin, { form });
  if (!done.left) throw new Error(`Expected a redirect back to the app, got ${done.res.status}: ${await done.res.text()}`);
  return { loginPage, consentPage, callback: done.left };
}
