import { bdi, html } from '../http/html.js';
import { page } from './layout.js';

export interface ConsentView {
  platformName: string;
  appName: string;
  flowId: string;
  csrfToken: string;
  userName: string;
  userEmail: string;
  /** Plain-words descriptions of what the app asks for. */
  permissions: string[];
  /** What earlier consents already allow it (they stay, and apply to every organisation connected). */
  alreadyAllowed?: string[];
  /** Null when the app asks for nothing in the books (sign-in only). */
  organisations: Array<{ id: string; name: string; role: string; checked: boolean; connected: boolean }> | null;
  error?: string;
}

export function consentPage(view: ConsentView): string {
  const orgs = view.organisations;
  const app = bdi(view.appName);
  return page({
    platformName: view.platformName,
    title: `Connect ${view.appName}`,
    body: html`<div class="app"><div class="logo" aria-hidden="true">${view.appName.slice(0, 1).toUpperCase()}</div>
<div><h1>${app} wants to connect to your ${view.platformName} account</h1></div></div>
${view.error ? html`<div class="alert" role="alert">${view.error}</div>` : ''}
<form method="post" action="/consent">
<input type="hidden" name="flow" value="${view.flowId}">
<input type="hidden" name="csrf" value="${view.csrfToken}">
<h2>${app} will be able to</h2>
<ul class="scopes">${view.permissions.map((p) => html`<li>${p}</li>`)}</ul>
${
  view.alreadyAllowed?.length
    ? html`<h2>You already allowed ${app} to</h2>
<ul class="scopes already">${view.alreadyAllowed.map((p) => html`<li>${p}</li>`)}</ul>
<p class="note">Everything you allow ${app} applies to every organisation you connect to it, including the ones you choose now. To take it back, disconnect the app.</p>`
    : ''
}
${
  orgs === null
    ? ''
    : orgs.length === 0
      ? html`<div class="alert" role="alert">You do not belong to any organisation yet, so there is nothing to connect.</div>`
      : html`<fieldset class="orgs"><legend>Choose the organisations ${app} may use</legend>
${orgs.map((o) =>
  o.connected
    ? html`<label class="org connected" for="org-${o.id}"><input type="checkbox" id="org-${o.id}" value="${o.id}" checked disabled><span><bdi>${o.name}</bdi></span><span class="role">Already connected</span></label>`
    : html`<label class="org" for="org-${o.id}"><input type="checkbox" id="org-${o.id}" name="organisation" value="${o.id}" ${o.checked ? html`checked` : ''}><span><bdi>${o.name}</bdi></span><span class="role">${o.role}</span></label>`,
)}</fieldset>
${orgs.some((o) => o.connected) ? html`<p class="fine">Organisations already connected stay connected. To disconnect one, use ${app}'s disconnect option.</p>` : ''}`
}
<div class="actions">
<button type="submit" name="decision" value="deny">Deny</button>
<button class="primary" type="submit" name="decision" value="allow">Allow access</button>
</div>
</form>
<form class="who" method="post" action="/logout">
<input type="hidden" name="flow" value="${view.flowId}">
<input type="hidden" name="csrf" value="${view.csrfToken}">
Signed in as <strong>${bdi(view.userName)}</strong> (${view.userEmail}). <button class="link" type="submit">Not you? Sign out</button>
</form>
<p class="fine">${app} can only do what you can do in these organisations. You can disconnect it at any time.</p>`,
  });
}
