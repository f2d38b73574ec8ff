const escape = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export interface OrganisationView {
  connectionId: string;
  tenantId: string;
  name: string;
  contacts: Array<{ Name: string; EmailAddress?: string }>;
  error?: string;
}

const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #fbf7f2; color: #2b2118; }
header { background: #5b3cc4; color: #fff; padding: 16px 28px; font-weight: 700; font-size: 20px; }
main { max-width: 760px; margin: 28px auto; padding: 0 20px; }
.card { background: #fff; border: 1px solid #eadfd3; border-radius: 12px; padding: 20px 24px; margin-bottom: 18px; }
button, .button { font: inherit; font-weight: 600; border-radius: 8px; padding: 10px 16px; border: 1px solid #5b3cc4; background: #5b3cc4; color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary { background: #fff; color: #5b3cc4; }
.notice { background: #eef6ff; border: 1px solid #c7ddf7; padding: 10px 14px; border-radius: 8px; margin-bottom: 18px; }
.notice.error-notice { background: #fdf2f1; border-color: #f3c4bf; color: #b42318; }
.error { color: #b42318; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; }
td, th { text-align: left; padding: 6px 4px; border-bottom: 1px solid #f0e8df; }
input { font: inherit; padding: 8px 10px; border: 1px solid #d9ccbd; border-radius: 8px; }
form.inline { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
`;

function layout(body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payroll Demo</title><style>${STYLE}</style></head><body><header>Payroll Demo</header><main>${body}</main></body></html>`;
}

export interface Notice {
  text: string;
  error?: boolean;
}

const notice = (n?: Notice) => (n ? `<div class="notice${n.error ? ' error-notice' : ''}" role="${n.error ? 'alert' : 'status'}">${escape(n.text)}</div>` : '');

export function homePage(message?: Notice): string {
  return layout(`${notice(message)}<div class="card"><h1>Pay your team from your books</h1>
<p>Payroll Demo reads your organisations and contacts from Ledgerly. You choose which organisations it may use, and you can disconnect it at any time.</p>
<p><a class="button" id="connect" href="/connect">Connect to Ledgerly</a></p></div>`);
}

export function connectedPage(userName: string, organisations: OrganisationView[], csrf: string, message?: Notice): string {
  const token = `<input type="hidden" name="csrf" value="${escape(csrf)}">`;
  const orgs = organisations
    .map(
      (o) => `<section class="card org" data-tenant-id="${escape(o.tenantId)}"><h2 class="org-name">${escape(o.name)}</h2>
${o.error ? `<p class="error">${escape(o.error)}</p>` : ''}
${
  o.contacts.length === 0
    ? '<p>No contacts yet.</p>'
    : `<table><thead><tr><th>Contact</th><th>Email</th></tr></thead><tbody>${o.contacts
        .map((c) => `<tr><td>${escape(c.Name)}</td><td>${escape(c.EmailAddress ?? '')}</td></tr>`)
        .join('')}</tbody></table>`
}
<form class="inline" method="post" action="/contacts">${token}<input type="hidden" name="tenantId" value="${escape(o.tenantId)}">
<input name="name" placeholder="Employee name" required aria-label="Employee name"><input name="email" type="email" placeholder="Email" aria-label="Email">
<button type="submit">Add employee</button></form>
<form method="post" action="/disconnect" style="margin-top:12px">${token}<input type="hidden" name="connectionId" value="${escape(o.connectionId)}">
<button class="secondary" type="submit">Disconnect ${escape(o.name)}</button></form></section>`,
    )
    .join('');
  return layout(`${notice(message)}<p>Connected to Ledgerly${userName ? ` as <strong>${escape(userName)}</strong>` : ''}.</p>
${organisations.length === 0 ? '<div class="card"><p>No organisations are connected.</p><p><a class="button" href="/connect">Connect to Ledgerly</a></p></div>' : orgs}
<p class="inline"><a class="button" href="/connect">Connect another organisation</a></p>
<form method="post" action="/forget">${token}<button class="secondary" type="submit">Sign out of Payroll Demo</button></form>`);
}

export function errorPage(message: string): string {
  return layout(`<div class="card"><h1>Something went wrong</h1><p class="error">${escape(message)}</p><p><a href="/">Back</a></p></div>`);
}
