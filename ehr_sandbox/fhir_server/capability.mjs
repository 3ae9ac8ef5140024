// The CapabilityStatement served at [base]/metadata, built from the loaded FHIR definitions so that
// it lists exactly the resource types and search parameters the router can answer.
import { getSearchParameters, globalSchema, isResourceType } from '@medplum/core';

const INTERACTIONS = ['read', 'vread', 'update', 'delete', 'history-instance', 'create', 'search-type'];
const READ_INTERACTIONS = ['read', 'vread', 'history-instance', 'search-type'];
const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

/** Returns the CapabilityStatement for this server. */
export function capabilityStatement({
  publicBase,
  smartConfig,
  v1Only,
  authEnabled,
  software,
  readOnlyTypes = new Set(),
  noTransaction = false,
}) {
  const resource = Object.keys(globalSchema.types)
    .filter((type) => isResourceType(type) && type !== 'Resource' && type !== 'DomainResource')
    .sort()
    .map((type) => ({
      type,
      interaction: (readOnlyTypes.has(type) ? READ_INTERACTIONS : INTERACTIONS).map((code) => ({ code })),
      versioning: 'versioned',
      readHistory: true,
      updateCreate: !readOnlyTypes.has(type),
      conditionalCreate: !readOnlyTypes.has(type),
      conditionalUpdate: !readOnlyTypes.has(type),
      searchParam: Object.values(getSearchParameters(type) ?? {})
        .filter((p) => !p.code.startsWith('_'))
        .map((p) => ({ name: p.code, type: p.type })),
    }));
  const rest = {
    mode: 'server',
    resource,
    interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }].filter(
      ({ code }) => !(noTransaction && code === 'transaction'),
    ),
  };
  if (authEnabled || smartConfig) {
    rest.security = security(smartConfig, v1Only);
  }
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software,
    implementation: { description: 'attach-fhir sandbox EHR FHIR server', url: publicBase },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [rest],
  };
}

function security(smartConfig, v1Only) {
  const result = {
    cors: false,
    service: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
            code: 'SMART-on-FHIR',
          },
        ],
      },
    ],
  };
  // Older (SMART v1) servers announce their endpoints here instead of in the well-known file.
  if (v1Only && smartConfig) {
    const uris = [
      ['authorize', smartConfig.authorization_endpoint],
      ['token', smartConfig.token_endpoint],
      ['revoke', smartConfig.revocation_endpoint],
      ['introspect', smartConfig.introspection_endpoint],
      ['manage', smartConfig.management_endpoint],
    ].filter(([, url]) => url);
    result.extension = [{ url: OAUTH_URIS, extension: uris.map(([url, valueUri]) => ({ url, valueUri })) }];
  }
  return result;
}
