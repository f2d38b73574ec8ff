import type { Organisation } from '@ledgerly/proto/accounting/v1/accounting';
import type { Organisation as IdentityOrganisation } from '@ledgerly/proto/identity/v1/identity';
import { randomBytes } from 'node:crypto';

/** Xero's regional defaults: API version, time zone and financial year end. */
const REGIONS: Record<string, { version: string; timezone: string; yearEnd: [day: number, month: number] }> = {
  NZ: { version: 'NZ', timezone: 'NEWZEALANDSTANDARDTIME', yearEnd: [31, 3] },
  AU: { version: 'AU', timezone: 'AUSEASTERNSTANDARDTIME', yearEnd: [30, 6] },
  GB: { version: 'UK', timezone: 'GMTSTANDARDTIME', yearEnd: [31, 3] },
  US: { version: 'US', timezone: 'EASTERNSTANDARDTIME', yearEnd: [31, 12] },
};

/** The accounting profile of a new organisation, from what the identity service knows. */
export function defaultProfile(org: IdentityOrganisation): Organisation {
  const region = REGIONS[org.countryCode] ?? { version: 'GLOBAL', timezone: 'UTC', yearEnd: [31, 12] as [number, number] };
  return {
    organisationId: org.id,
    name: org.name,
    legalName: org.name,
    paysTax: true,
    version: region.version,
    organisationType: 'COMPANY',
    baseCurrency: org.baseCurrency,
    countryCode: org.countryCode,
    isDemoCompany: false,
    organisationStatus: 'ACTIVE',
    financialYearEndDay: region.yearEnd[0],
    financialYearEndMonth: region.yearEnd[1],
    timezone: region.timezone,
    organisationEntityType: 'COMPANY',
    shortCode: '!' + randomBytes(4).toString('base64url').slice(0, 5),
    edition: 'BUSINESS',
    class: 'PREMIUM',
    createdDateUtc: org.createdAt ?? new Date(),
  };
}
