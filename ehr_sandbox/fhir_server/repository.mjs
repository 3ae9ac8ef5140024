// Medplum's in-memory FHIR repository with the few corrections a sandbox EHR needs to behave like
// a real server: validated writes, server-assigned ids on create, rollback for transactions,
// exact `uri` search, 410 after delete and a history that is not reordered by reading it.
import {
  OperationOutcomeError,
  Operator,
  allOk,
  badRequest,
  created,
  evalFhirPath,
  getSearchParameter,
  gone,
  multipleMatches,
  validateResource,
} from '@medplum/core';
import { MemoryRepository, getExtraEntries } from '@medplum/fhir-router';

// An outcome id that Medplum's getStatus() maps to 422 Unprocessable Entity.
const UNPROCESSABLE = 'business-rule';

export class SandboxRepository extends MemoryRepository {
  constructor({ searchIndex = true } = {}) {
    super();
    this.deleted = new Set();
    this.inTransaction = false;
    // (type, code) -> SearchIndex: narrows which resources Medplum's own search looks at.
    this.searchIndex = searchIndex ? new Map() : undefined;
  }

  // Medplum's search evaluates every filter's FHIRPath on every resource of the type (O(N) per
  // search). For an `eq` filter on identifier, _tag, patient or subject it is handed only the
  // resources whose indexed values hold the searched one (case-insensitively, so a superset of
  // its matches), and decides itself which of those match, sorts and pages them.
  searchSync(searchRequest) {
    const candidates = this.searchIndex && this.candidates(searchRequest);
    if (!candidates) {
      return super.searchSync(searchRequest);
    }
    const saved = this.resources;
    const all = saved.get(searchRequest.resourceType) ?? new Map();
    const subset = new Map();
    for (const [id, resource] of all) {
      if (candidates.has(id)) {
        subset.set(id, resource); // in the stored order, as Medplum would meet them
      }
    }
    this.resources = new Map(saved);
    this.resources.set(searchRequest.resourceType, subset);
    try {
      return super.searchSync(searchRequest);
    } finally {
      this.resources = saved;
    }
  }

  /** The ids that may match the request's first indexable filter, or undefined (none). */
  candidates({ resourceType, filters }) {
    if ((filters ?? []).some((f) => f.code.includes('.') || f.code.startsWith('_has'))) {
      return undefined; // a chained filter reads the type's other resources too
    }
    for (const filter of filters ?? []) {
      const key = indexKey(filter);
      if (key === undefined) {
        continue;
      }
      const param = getSearchParameter(resourceType, filter.code);
      if (!param || !['token', 'reference'].includes(param.type)) {
        continue;
      }
      const name = `${resourceType}?${filter.code}`;
      let index = this.searchIndex.get(name);
      if (!index) {
        index = new SearchIndex(param);
        this.searchIndex.set(name, index);
      }
      index.refresh(this.resources.get(resourceType) ?? new Map());
      return index.lookup(key);
    }
    return undefined;
  }

  /** True when the resource exists now (used to tell create-by-update from update). */
  exists(resourceType, id) {
    return Boolean(this.resources.get(resourceType)?.has(id));
  }

  async createResource(resource, options, update = false) {
    validate(resource);
    // A plain create gets a server-assigned id whatever the client sent (FHIR http.html#create).
    const toStore = !update && !options?.assignedId ? { ...resource, id: undefined } : resource;
    this.deleted.delete(`${resource.resourceType}/${toStore.id}`);
    return super.createResource(toStore, options, update);
  }

  async readResource(resourceType, id) {
    try {
      return await super.readResource(resourceType, id);
    } catch (err) {
      if (this.deleted.has(`${resourceType}/${id}`)) {
        throw new OperationOutcomeError(gone);
      }
      throw err;
    }
  }

  async deleteResource(resourceType, id, options) {
    await super.deleteResource(resourceType, id, options);
    this.deleted.add(`${resourceType}/${id}`);
  }

  // MemoryRepository.readHistory reverses the stored version list in place; copy it first.
  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id);
    const versions = [...(this.history.get(resourceType)?.get(id) ?? [])].reverse();
    return {
      resourceType: 'Bundle',
      type: 'history',
      total: versions.length,
      entry: versions.map((version) => ({ resource: structuredClone(version) })),
    };
  }

  async search(searchRequest) {
    const exact = (searchRequest.filters ?? []).filter(isExactFilter(searchRequest.resourceType));
    if (exact.length === 0) {
      return super.search(searchRequest);
    }
    // Medplum matches uri and string values by substring; FHIR says uri (and :exact) match whole.
    const { count, offset, include, revInclude } = searchRequest;
    const rest = searchRequest.filters.filter((f) => !exact.includes(f));
    const all = await super.search({
      ...searchRequest,
      filters: rest,
      count: undefined,
      offset: undefined,
      include: undefined,
      revInclude: undefined,
    });
    const matches = (all.entry ?? []).filter((e) =>
      exact.every((f) => matchesExactly(searchRequest.resourceType, e.resource, f)),
    );
    const start = offset ?? 0;
    const entries = matches.slice(start, count === undefined ? undefined : start + count);
    if ((include || revInclude) && entries.length) {
      await getExtraEntries(
        this,
        searchRequest,
        entries.map((e) => e.resource),
        entries,
      );
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: matches.length,
      ...(entries.length ? { entry: entries } : undefined),
    };
  }

  // Medplum's version searches privately (substring uri match); requests are serialised by the
  // HTTP adapter, so search-then-create here is atomic.
  async conditionalCreate(resource, search, options) {
    if (search.resourceType !== resource.resourceType) {
      throw new OperationOutcomeError(badRequest('If-None-Exist search type must match'));
    }
    const bundle = await this.search({ ...search, count: 2, offset: 0, sortRules: undefined });
    const matches = (bundle.entry ?? []).map((e) => e.resource);
    if (matches.length > 1) {
      throw new OperationOutcomeError(multipleMatches);
    }
    if (matches.length === 1) {
      return { resource: matches[0], outcome: allOk };
    }
    const createdResource = await this.createResource(resource, options);
    return { resource: createdResource, outcome: created };
  }

  // MemoryRepository has no rollback; snapshot the maps (all requests are serialised).
  async withTransaction(callback) {
    if (this.inTransaction) {
      return callback(this);
    }
    const snapshot = this.snapshot();
    this.inTransaction = true;
    try {
      return await callback(this);
    } catch (err) {
      this.restore(snapshot);
      throw err;
    } finally {
      this.inTransaction = false;
    }
  }

  snapshot() {
    const copy = (outer, inner) => new Map([...outer].map(([k, v]) => [k, inner(v)]));
    return {
      resources: copy(this.resources, (m) => new Map(m)),
      history: copy(this.history, (m) => copy(m, (versions) => [...versions])),
      deleted: new Set(this.deleted),
    };
  }

  restore(snapshot) {
    for (const name of ['resources', 'history']) {
      this[name].clear();
      for (const [k, v] of snapshot[name]) {
        this[name].set(k, v);
      }
    }
    this.deleted = snapshot.deleted;
  }
}

const INDEXED_CODES = new Set(['identifier', '_tag', 'patient', 'subject']);

/** The value an `eq` filter on an indexed code looks for (lower case), else undefined. */
function indexKey(filter) {
  if (filter.operator !== Operator.EQUALS || !INDEXED_CODES.has(filter.code)) {
    return undefined;
  }
  const value = String(filter.value ?? '');
  if (!value || value.includes(',')) {
    return undefined; // several values: not worth it
  }
  const token = value.includes('|') ? value.slice(value.indexOf('|') + 1) : value;
  // "system|" asks for any value in the system: the index, keyed by value, cannot narrow it
  return token ? lastSegment(token) : undefined;
}

/** "Patient/1", "http://x/Patient/1/_history/2" and "1" all give "1"; lower case. */
function lastSegment(value) {
  const plain = String(value).split('/_history/')[0];
  return plain.slice(plain.lastIndexOf('/') + 1).toLowerCase();
}

/** The values one search parameter takes for each resource of a type, kept current by
 * comparing each stored resource (object and version) with the one indexed. */
class SearchIndex {
  constructor(param) {
    this.param = param;
    this.indexed = new Map(); // id -> { resource, version, keys }
    this.ids = new Map(); // key -> Set of ids
  }

  refresh(all) {
    for (const [id, resource] of all) {
      const seen = this.indexed.get(id);
      if (seen && seen.resource === resource && seen.version === resource.meta?.versionId) {
        continue;
      }
      if (seen) {
        this.remove(id, seen);
      }
      this.add(id, resource);
    }
    if (this.indexed.size !== all.size) {
      for (const [id, seen] of this.indexed) {
        if (all.get(id) !== seen.resource) {
          this.remove(id, seen);
        }
      }
    }
  }

  add(id, resource) {
    const keys = new Set();
    for (const value of evalFhirPath(this.param.expression, resource)) {
      for (const part of [value?.value, value?.code, value?.reference, typeof value === 'string' ? value : undefined]) {
        if (typeof part === 'string' && part) {
          keys.add(lastSegment(part));
        }
      }
    }
    for (const key of keys) {
      if (!this.ids.has(key)) {
        this.ids.set(key, new Set());
      }
      this.ids.get(key).add(id);
    }
    this.indexed.set(id, { resource, version: resource.meta?.versionId, keys });
  }

  remove(id, seen) {
    for (const key of seen.keys) {
      this.ids.get(key)?.delete(id);
    }
    this.indexed.delete(id);
  }

  lookup(key) {
    return this.ids.get(key) ?? new Set();
  }
}

function validate(resource) {
  try {
    validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      throw new OperationOutcomeError({ ...err.outcome, id: UNPROCESSABLE });
    }
    throw err;
  }
}

// Filters Medplum matches too loosely: uri by substring, :exact strings by substring, and
// canonical references given without a version (which must match every version, `url|1.0`).
function isExactFilter(resourceType) {
  return (filter) => {
    const param = getSearchParameter(resourceType, filter.code);
    if (!param || filter.operator !== (param.type === 'string' ? Operator.EXACT : Operator.EQUALS)) {
      return false;
    }
    const canonical = param.type === 'reference' && /^https?:\/\/[^|]+$/.test(filter.value);
    return param.type === 'uri' || param.type === 'string' || canonical;
  };
}

function matchesExactly(resourceType, resource, filter) {
  const param = getSearchParameter(resourceType, filter.code);
  const wanted = filter.value.split(',');
  const values = evalFhirPath(param.expression, resource).map((v) =>
    typeof v === 'object' ? v?.reference : v,
  );
  const comparable =
    param.type === 'reference' ? values.map((v) => String(v).split('|')[0]) : values.map(String);
  return comparable.some((v) => wanted.includes(v));
}
