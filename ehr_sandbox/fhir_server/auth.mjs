// SMART on FHIR access control for the sandbox server: bearer tokens from the configured JWKS,
// v2 (`patient/Observation.rs`) and v1 (`patient/Observation.read`) scopes enforced per resource
// type and interaction, and `patient/` scopes confined to the token's `patient` compartment.
import { evalFhirPath, getSearchParameter } from '@medplum/core';
import { HttpError } from './errors.mjs';
import { TokenError, verifyJwt } from './jwt.mjs';

// The SMART v2 permission letter each REST interaction needs.
const LETTER = {
  read: 'r',
  vread: 'r',
  'history-instance': 'r',
  'search-type': 's',
  create: 'c',
  update: 'u',
  patch: 'u',
  delete: 'd',
};
const V1 = { read: 'rs', write: 'cud', '*': 'cruds' };
const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$/;

/** Parses the scope claim into grants: { context, type, letters }. */
export function parseScopes(scope) {
  const grants = [];
  for (const s of String(scope ?? '').split(/\s+/)) {
    // Granular v2 scopes (`?category=...`) narrow access; we cannot honour the narrowing, so
    // they grant nothing rather than too much.
    const m = SCOPE.exec(s);
    if (m && m[3]) {
      grants.push({ context: m[1], type: m[2], letters: V1[m[3]] ?? m[3] });
    }
  }
  return grants;
}

/** The patient compartment test: the references a resource holds to its patient. */
function patientReferences(resource) {
  if (resource.resourceType === 'Patient') {
    return [`Patient/${resource.id}`];
  }
  const param = getSearchParameter(resource.resourceType, 'patient');
  if (!param?.expression) {
    return undefined; // not a patient-compartment type (Questionnaire, Practitioner, ...)
  }
  return evalFhirPath(param.expression, resource).map((ref) => ref?.reference);
}

function forbidden(text) {
  return new HttpError(403, 'forbidden', text, { 'WWW-Authenticate': 'Bearer error="insufficient_scope"' });
}

export class Authorizer {
  constructor({ jwks, audience }) {
    this.jwks = jwks;
    this.audience = audience;
  }

  /** Verifies the Authorization header; returns { grants, patient } or throws a 401. */
  authenticate(header) {
    const realm = `Bearer realm="${this.audience}"`;
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!match) {
      throw new HttpError(401, 'login', 'Bearer token required', { 'WWW-Authenticate': realm });
    }
    try {
      const claims = verifyJwt(match[1], this.jwks, this.audience);
      return { grants: parseScopes(claims.scope ?? claims.scp?.join?.(' ')), patient: claims.patient };
    } catch (err) {
      if (!(err instanceof TokenError)) {
        throw err;
      }
      const description = err.message.replaceAll('"', "'");
      throw new HttpError(401, 'login', `Invalid token: ${description}`, {
        'WWW-Authenticate': `${realm}, error="invalid_token", error_description="${description}"`,
      });
    }
  }

  /** 'full' (user/system scope), 'patient' (patient scope only) or undefined (no scope). */
  access(principal, resourceType, letter) {
    const matching = principal.grants.filter(
      (g) => (g.type === '*' || g.type === resourceType) && g.letters.includes(letter),
    );
    if (matching.some((g) => g.context !== 'patient')) {
      return 'full';
    }
    return matching.length ? 'patient' : undefined;
  }

  /** Checks one interaction; returns the compartment patient id when one applies. */
  permit(principal, interaction, resourceType) {
    const letter = LETTER[interaction];
    const access = letter && resourceType ? this.access(principal, resourceType, letter) : undefined;
    if (!access) {
      throw forbidden(`The token's scopes do not allow ${interaction} on ${resourceType ?? 'the server'}`);
    }
    if (access === 'full') {
      return undefined;
    }
    if (!principal.patient) {
      throw forbidden('patient/ scopes need a patient in the token');
    }
    return principal.patient;
  }

  inCompartment(resource, patient) {
    const refs = patientReferences(resource);
    return refs === undefined || refs.includes(`Patient/${patient}`);
  }

  async existing(api, resourceType, id) {
    try {
      return await api.repo.readResource(resourceType, id);
    } catch {
      return undefined;
    }
  }

  /** Enforces scopes and the patient compartment around one FhirApi request. */
  async handle(principal, request, api) {
    const route = api.classify(request.method, request.path);
    if (!route) {
      return api.handle(request);
    }
    if (route.interaction === 'batch') {
      await this.permitBundle(principal, request.body, api);
      return api.handle(request);
    }
    const { interaction, resourceType, id } = route;
    const patient = this.permit(principal, interaction, resourceType);
    if (!patient) {
      return api.handle(request);
    }
    if (interaction === 'search-type') {
      const query = new URLSearchParams(request.query);
      if (resourceType === 'Patient') {
        query.append('_id', patient);
      } else if (getSearchParameter(resourceType, 'patient')) {
        query.append('patient', `Patient/${patient}`);
      }
      return api.handle({ ...request, query });
    }
    await this.permitWrite(api, patient, interaction, resourceType, id, request.body);
    const result = await api.handle(request);
    const resources =
      result.body?.resourceType === 'Bundle'
        ? (result.body.entry ?? []).map((e) => e.resource)
        : [result.body];
    if (result.status < 300 && !resources.every((r) => !r || this.inCompartment(r, patient))) {
      throw forbidden("The resource is outside the token's patient compartment");
    }
    return result;
  }

  async permitWrite(api, patient, interaction, resourceType, id, body) {
    if (['create', 'update'].includes(interaction) && body && !this.inCompartment(body, patient)) {
      throw forbidden("The resource is outside the token's patient compartment");
    }
    if (['update', 'patch', 'delete'].includes(interaction) && id) {
      const current = await this.existing(api, resourceType, id);
      if (current && !this.inCompartment(current, patient)) {
        throw forbidden("The resource is outside the token's patient compartment");
      }
    }
  }

  // Entries are checked before anything runs; reads inside a bundle need user/system scopes
  // because their results are not filtered per entry.
  async permitBundle(principal, bundle, api) {
    for (const entry of bundle?.entry ?? []) {
      const method = entry.request?.method;
      const route = method ? api.classify(method, api.relative(entry.request.url ?? '')) : undefined;
      if (!route) {
        continue; // the batch processor reports it per entry
      }
      const patient = this.permit(principal, route.interaction, route.resourceType);
      if (!patient) {
        continue;
      }
      if (['read', 'vread', 'history-instance', 'search-type'].includes(route.interaction)) {
        throw forbidden('Reads inside a Bundle need user/ or system/ scopes');
      }
      await this.permitWrite(api, patient, route.interaction, route.resourceType, route.id, entry.resource);
    }
  }
}
