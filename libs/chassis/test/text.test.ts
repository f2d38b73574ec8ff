import { describe, expect, it } from 'vitest';
import { hasUnsafeText } from '../src/index.js';

describe('hasUnsafeText', () => {
  it('flags controls and bidirectional formatting, and nothing else', () => {
    for (const bad of ['Evil \u202Egnp.exe', 'a\u0000b', 'tab\there', 'line\nbreak', '\u2066isolate\u2069', 'mark\u200F', '\u009Fc1']) {
      expect(hasUnsafeText(bad), JSON.stringify(bad)).toBe(true);
    }
    for (const good of ['Kauri Consulting Ltd', 'Māori Trust', 'שלום', 'مرحبا', '株式会社', 'Café & Co. <b>', 'emoji 🙂']) {
      expect(hasUnsafeText(good), good).toBe(false);
    }
  });
});
