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
  constructor() {
    super();
    this.deleted = new Set();
    this.inTransaction = false;
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
