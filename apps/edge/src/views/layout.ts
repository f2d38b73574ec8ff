import { html, type SafeHtml } from '../http/html.js';

export interface PageOptions {
  platformName: string;
  title: string;
  body: SafeHtml;
}

/** Every page: no scripts at all, our own stylesheet, the platform's name on top. */
export function page(options: PageOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${options.title} · ${options.platformName}</title>
<link rel="stylesheet" href="/assets/ledgerly.css">
<link rel="icon" href="data:,">
</head>
<body>
<header class="brand"><span class="mark" aria-hidden="true">${options.platformName.slice(0, 1)}</span>${options.platformName}</header>
<main class="card">
${options.body}
</main>
</body>
</html>
`.value;
}
