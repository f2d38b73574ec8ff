import { html } from '../http/html.js';
import { page } from './layout.js';

export function errorPage(platformName: string, title: string, detail: string, requestId: string): string {
  return page({
    platformName,
    title,
    body: html`<h1>${title}</h1>
<p class="lead">${detail}</p>
<p class="fine">Reference: <code>${requestId}</code></p>`,
  });
}
