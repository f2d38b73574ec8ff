/** The stylesheet of the login, consent and error pages (served from /assets, CSP 'self'). */
export const STYLESHEET = `
:root { --ink:#14213d; --muted:#5c677d; --line:#dfe3ea; --bg:#f4f6f9; --brand:#0b6e4f; --brand-ink:#fff; --danger:#b42318; --focus:#2f6fed; }
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); background: var(--bg); min-height: 100vh; display: flex; flex-direction: column; align-items: center; }
header.brand { width: 100%; padding: 20px 24px; display: flex; align-items: center; gap: 10px; font-weight: 700; font-size: 18px; letter-spacing: .2px; }
header.brand .mark { width: 28px; height: 28px; border-radius: 7px; background: var(--brand); display: inline-flex; align-items: center; justify-content: center; color: var(--brand-ink); font-size: 15px; }
main.card { width: min(460px, calc(100% - 32px)); background: #fff; border: 1px solid var(--line); border-radius: 14px; padding: 28px 28px 24px; margin: 8px 0 32px; box-shadow: 0 1px 2px rgba(20,33,61,.04), 0 8px 24px rgba(20,33,61,.06); }
h1 { font-size: 22px; line-height: 1.3; margin: 0 0 6px; }
p.lead { color: var(--muted); margin: 0 0 20px; }
label.field { display: block; font-weight: 600; font-size: 14px; margin: 14px 0 6px; }
input[type=email], input[type=password] { width: 100%; padding: 11px 12px; font: inherit; border: 1px solid var(--line); border-radius: 9px; background: #fff; }
input:focus-visible, button:focus-visible { outline: 3px solid var(--focus); outline-offset: 1px; }
.actions { display: flex; gap: 12px; margin-top: 22px; }
button { flex: 1; font: inherit; font-weight: 600; padding: 11px 16px; border-radius: 9px; border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; }
button.primary { background: var(--brand); border-color: var(--brand); color: var(--brand-ink); }
.alert { border: 1px solid #f3c4bf; background: #fdf2f1; color: var(--danger); border-radius: 9px; padding: 10px 12px; margin: 0 0 16px; font-size: 14px; }
.app { display: flex; gap: 14px; align-items: center; margin-bottom: 18px; }
.app .logo { width: 48px; height: 48px; border-radius: 12px; background: #e8f3ef; color: var(--brand); display: flex; align-items: center; justify-content: center; font-weight: 700; font-size: 20px; flex: none; }
h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 22px 0 8px; }
ul.scopes { list-style: none; padding: 0; margin: 0; }
ul.scopes li { padding: 7px 0 7px 28px; position: relative; }
ul.scopes li::before { content: "✓"; position: absolute; left: 4px; color: var(--brand); font-weight: 700; }
fieldset.orgs { border: 0; padding: 0; margin: 0; }
fieldset.orgs legend { font-size: 14px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 22px 0 8px; padding: 0; font-weight: 600; }
.org { display: flex; align-items: center; gap: 12px; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; margin-bottom: 8px; cursor: pointer; }
.org input { width: 18px; height: 18px; accent-color: var(--brand); }
.org .role { margin-left: auto; color: var(--muted); font-size: 13px; }
.who { color: var(--muted); font-size: 14px; margin-top: 18px; }
button.link { flex: none; display: inline; padding: 0; border: 0; background: none; color: var(--brand); font-weight: 600; font-size: inherit; text-decoration: underline; cursor: pointer; }
fieldset.orgs legend, h2 { margin-top: 26px; }
.org.connected { background: #f6faf8; }
.fine { color: var(--muted); font-size: 13px; margin-top: 16px; }
code { background: #f1f3f6; padding: 1px 5px; border-radius: 5px; font-size: 13px; }
`;
