import { bdi, html } from '../http/html.js';
import { page } from './layout.js';

export interface LoginView {
  platformName: string;
  appName: string;
  flowId: string;
  csrfToken: string;
  email?: string;
  error?: string;
}

export function loginPage(view: LoginView): string {
  return page({
    platformName: view.platformName,
    title: 'Sign in',
    body: html`<h1>Sign in to ${view.platformName}</h1>
<p class="lead">to continue to <strong>${bdi(view.appName)}</strong></p>
${view.error ? html`<div class="alert" role="alert">${view.error}</div>` : ''}
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="flow" value="${view.flowId}">
<input type="hidden" name="csrf" value="${view.csrfToken}">
<label class="field" for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="${view.email ?? ''}" ${view.email ? '' : html`autofocus`}>
<label class="field" for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required ${view.email ? html`autofocus` : ''}>
<div class="actions"><button class="primary" type="submit">Sign in</button></div>
</form>
<p class="fine">You are signing in on ${view.platformName}'s own page. ${bdi(view.appName)} never sees your password.</p>`,
  });
}
