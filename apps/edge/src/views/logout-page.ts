import { bdi, html } from '../http/html.js';
import { page } from './layout.js';

export interface LogoutView {
  platformName: string;
  /** The app that asked, if known. */
  appName?: string;
  csrfToken: string;
  clientId: string;
  postLogoutRedirectUri: string;
  state: string;
}

/** RP-initiated logout: the platform asks before it signs the person out. */
export function logoutPage(view: LogoutView): string {
  return page({
    platformName: view.platformName,
    title: 'Sign out',
    body: html`<h1>Sign out of ${view.platformName}?</h1>
<p class="lead">${view.appName ? html`<strong>${bdi(view.appName)}</strong> asked to sign you out of ${view.platformName} in this browser.` : html`You asked to sign out of ${view.platformName} in this browser.`}</p>
<form method="post" action="/session/end/confirm">
<input type="hidden" name="csrf" value="${view.csrfToken}">
<input type="hidden" name="client_id" value="${view.clientId}">
<input type="hidden" name="post_logout_redirect_uri" value="${view.postLogoutRedirectUri}">
<input type="hidden" name="state" value="${view.state}">
<div class="actions"><button class="primary" type="submit" name="decision" value="logout">Sign out</button><button type="submit" name="decision" value="stay">Stay signed in</button></div>
</form>`,
  });
}

export function loggedOutPage(platformName: string, signedOut: boolean): string {
  return page({
    platformName,
    title: signedOut ? 'Signed out' : 'Still signed in',
    body: signedOut
      ? html`<h1>You have signed out</h1><p class="lead">You are no longer signed in to ${platformName} in this browser. You can close this window.</p>`
      : html`<h1>You are still signed in</h1><p class="lead">Nothing changed. You can close this window.</p>`,
  });
}
