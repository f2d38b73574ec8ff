/**
 * Characters never allowed in names people read (users, organisations, apps,
 * contacts): C0 and C1 controls (including NUL), and the Unicode bidirectional
 * marks, embeddings, overrides and isolates, which can make a consent page
 * read backwards ("Evil \u202Egnp.exe") or hide what a name says.
 */
// Matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

export function hasUnsafeText(value: string): boolean {
  return UNSAFE_TEXT.test(value);
}
