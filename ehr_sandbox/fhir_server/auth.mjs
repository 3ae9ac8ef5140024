// SMART on FHIR access control for the sandbox server: bearer tokens from the configured JWKS,
// v2 (`patient/Observation.rs`) and v1 (`patient/Observation.read`) scopes enforced per resource
// type and interaction, and `patient/` scopes confined to the token's `patient` compartment.
// A Provenance is placed through its targets: the search parameter `patient` needs resolve(),
// which FHIRPath here cannot do, so each target is looked up (an entry of the same Bundle, else
// the stored resource) and must belong to the patient.
import { evalFhirPath, getSearchParameter } from '@medplum/core';
import { MAX_PAGE_SIZE } from './api.mjs';
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

  /** True when the resource is in the patient's compartment (or in no patient compartment).
   * `local` maps the references of a Bundle's own entries (fullUrl, Type/id) to their resources. */
  async inCompartment(api, resource, patient, local = new Map()) {
    if (resource.resourceType === 'Provenance') {
      return this.provenanceInCompartment(api, resource, patient, local);
    }
    return this.holds(resource, patient);
  }

  holds(resource, patient) {
    const refs = patientReferences(resource);
    return refs === undefined || refs.includes(`Patient/${patient}`);
  }

  // Every target must be found and none may belong to another patient; at least one must
  // belong to this one (a Provenance of only a Questionnaire is not the patient's record).
  async provenanceInCompartment(api, provenance, patient, local) {
    let own = false;
    for (const target of provenance.target ?? []) {
      const ref = normaliseReference(api, target?.reference);
      if (!ref) {
        return false;
      }
      const [type, id] = ref.split('/');
      const found = local.get(ref) ?? (id ? await this.existing(api, type, id) : undefined);
      if (!found || found.resourceType === 'Provenance') {
        return false; // unknown, or a Provenance of a Provenance: not placed, so refused
      }
      if (patientReferences(found) === undefined) {
        continue;
      }
      if (!this.holds(found, patient)) {
        return false;
      }
      own = true;
    }
    return own;
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
    const condition =
      interaction === 'create' ? request.headers?.['if-none-exist'] : id ? undefined : request.query?.toString();
    await this.permitWrite(api, patient, route, request.body, condition);
    const result = await api.handle(request);
    const resources =
      result.body?.resourceType === 'Bundle'
        ? (result.body.entry ?? []).map((e) => e.resource)
        : [result.body];
    if (result.status < 300) {
      for (const r of resources) {
        if (r && !(await this.inCompartment(api, r, patient))) {
          throw forbidden("The resource is outside the token's patient compartment");
        }
      }
    }
    return result;
  }

  async permitWrite(api, patient, { interaction, resourceType, id }, body, condition, local = new Map()) {
    const writes = ['create', 'update'].includes(interaction) && body;
    if (writes && !(await this.inCompartment(api, body, patient, local))) {
      throw forbidden("The resource is outside the token's patient compartment");
    }
    if (['update', 'patch', 'delete'].includes(interaction) && id) {
      const current = await this.existing(api, resourceType, id);
      if (current && !(await this.inCompartment(api, current, patient))) {
        throw forbidden("The resource is outside the token's patient compartment");
      }
    }
    if (condition && ['create', 'update', 'patch', 'delete'].includes(interaction)) {
      await this.permitCondition(api, patient, resourceType, condition);
    }
  }

  // A conditional create, update, patch or delete acts on whatever its condition matches (a
  // conditional create's fullUrl then stands for the match): none of it may be another patient's.
  async permitCondition(api, patient, resourceType, condition) {
    const query = new URLSearchParams(condition);
    query.set('_count', String(MAX_PAGE_SIZE));
    const result = await api.search(resourceType, query);
    for (const entry of result.body?.entry ?? []) {
      if (!(await this.inCompartment(api, entry.resource, patient))) {
        throw forbidden("The condition matches a resource outside the token's patient compartment");
      }
    }
  }

  // Entries are checked before anything runs; reads inside a bundle need user/system scopes
  // because their results are not filtered per entry.
  async permitBundle(principal, bundle, api) {
    const local = bundleReferences(api, bundle);
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
      const url = entry.request.url ?? '';
      const condition =
        route.interaction === 'create' ? entry.request.ifNoneExist : route.id ? undefined : url.split('?')[1];
      await this.permitWrite(api, patient, route, entry.resource, condition, local);
    }
  }
}

/** `Type/id` for a relative, versioned or absolute-on-this-server reference; else as given. */
function normaliseReference(api, reference) {
  if (typeof reference !== 'string' || !reference) {
    return undefined;
  }
  if (reference.startsWith('urn:')) {
    return reference;
  }
  const relative = api.relative(reference).split('?')[0];
  const [type, id] = relative.split('/');
  return /^[A-Z][A-Za-z]+$/.test(type) && id ? `${type}/${id}` : undefined;
}

/** The resources a Bundle writes: by urn: fullUrl, and a PUT to Type/id by that reference. */
function bundleReferences(api, bundle) {
  const local = new Map();
  for (const entry of bundle?.entry ?? []) {
    const resource = entry?.resource;
    if (!resource?.resourceType) {
      continue;
    }
    // A POST gets a new id, so only a urn: fullUrl names it; a PUT keeps the id of its URL.
    if (entry.fullUrl?.startsWith('urn:')) {
      local.set(entry.fullUrl, resource);
    }
    const url = entry.request?.method === 'PUT' ? normaliseReference(api, entry.request.url) : undefined;
    if (url?.startsWith(`${resource.resourceType}/`) && !entry.request.url.includes('?')) {
      local.set(url, resource);
    }
  }
  return local;
}
