/**
 * The scope catalogue: OpenID Connect scopes and Xero's Accounting API
 * scopes, broad and granular, each with the plain words the consent page
 * shows. A scope not listed here is refused with invalid_scope.
 */
export interface ScopeInfo {
  readonly name: string;
  /** What the person grants, in plain words, completing "<App> wants to …". */
  readonly description: string;
  /** Identity scopes need no organisation; accounting scopes act on the chosen ones. */
  readonly kind: 'identity' | 'accounting';
}

const REPORTS: Record<string, string> = {
  aged: 'aged payables and receivables',
  balancesheet: 'balance sheet',
  banksummary: 'bank summary',
  budgetsummary: 'budget summary',
  executivesummary: 'executive summary',
  profitandloss: 'profit and loss',
  trialbalance: 'trial balance',
  taxreports: 'tax reports',
  tenninetynine: '1099 report',
};

const entries: Array<[string, string, ScopeInfo['kind']]> = [
  ['openid', 'confirm who you are', 'identity'],
  ['profile', 'see your name', 'identity'],
  ['email', 'see your email address', 'identity'],
  ['offline_access', 'stay connected when you are not using it', 'identity'],
  ['accounting.transactions', 'view and manage your business transactions: invoices, bills, bank transactions and payments', 'accounting'],
  ['accounting.transactions.read', 'view your business transactions', 'accounting'],
  ['accounting.invoices', 'view and manage your invoices', 'accounting'],
  ['accounting.invoices.read', 'view your invoices', 'accounting'],
  ['accounting.payments', 'view and manage your payments', 'accounting'],
  ['accounting.payments.read', 'view your payments', 'accounting'],
  ['accounting.banktransactions', 'view and manage your bank transactions', 'accounting'],
  ['accounting.banktransactions.read', 'view your bank transactions', 'accounting'],
  ['accounting.manualjournals', 'view and manage your manual journals', 'accounting'],
  ['accounting.manualjournals.read', 'view your manual journals', 'accounting'],
  ['accounting.contacts', 'view and manage your contacts', 'accounting'],
  ['accounting.contacts.read', 'view your contacts', 'accounting'],
  ['accounting.settings', 'view and manage your organisation settings: chart of accounts, tax rates and more', 'accounting'],
  ['accounting.settings.read', 'view your organisation settings', 'accounting'],
  ['accounting.reports.read', 'view your reports', 'accounting'],
  ['accounting.journals.read', 'view your general ledger', 'accounting'],
  ['accounting.attachments', 'view and manage your attachments', 'accounting'],
  ['accounting.attachments.read', 'view your attachments', 'accounting'],
  ...Object.entries(REPORTS).map(
    ([id, words]): [string, string, ScopeInfo['kind']] => [`accounting.reports.${id}.read`, `view your ${words}`, 'accounting'],
  ),
];

export const SCOPES: ReadonlyMap<string, ScopeInfo> = new Map(
  entries.map(([name, description, kind]) => [name, { name, description, kind }]),
);

export function isKnownScope(scope: string): boolean {
  return SCOPES.has(scope);
}

/** Splits an RFC 6749 §3.3 scope string: space-delimited, case-sensitive, de-duplicated. */
export function parseScope(value: string | undefined): string[] {
  if (!value) return [];
  return [...new Set(value.split(' ').filter((s) => s.length > 0))];
}

/** True when any scope needs an organisation chosen at consent. */
export function needsOrganisation(scopes: readonly string[]): boolean {
  return scopes.some((s) => SCOPES.get(s)?.kind === 'accounting');
}
