// FHIR REST semantics on top of Medplum's FhirRouter: status codes, Location/ETag headers,
// search paging with links on the public base URL, fullUrl on bundle entries, and transaction or
// batch Bundles posted to the base.
import {
  OperationOutcomeError,
  badRequest,
  getStatus,
  isResourceType,
  normalizeOperationOutcome,
} from '@medplum/core';
import { BatchProcessor, FhirRouter } from '@medplum/fhir-router';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 1000;

// Medplum caps transactions with conditional entries at 8 entries (its PostgreSQL repository runs
// them SERIALIZABLE) and at 50 updates; here every request is already serialised and a seed may
// be larger, so lift both caps.
class SandboxBatchProcessor extends BatchProcessor {
  async preprocessBundle() {
    const info = await super.preprocessBundle();
    info.requiresStrongTransaction = false;
    info.updates = 0;
    return info;
  }
}

/** A FHIR response: HTTP status, body (resource or OperationOutcome) and extra headers. */
export class FhirApi {
  constructor(repo, publicBase) {
    this.repo = repo;
    this.router = new FhirRouter();
    this.publicBase = publicBase;
  }

  /** The route Medplum would take: { interaction, resourceType, id } or undefined. */
  classify(method, path) {
    const route = this.router.find(method, path);
    if (!route) {
      return undefined;
    }
    return {
      interaction: route.data?.interaction,
      resourceType: route.params.resourceType,
      id: route.params.id,
    };
  }

  /** Handles one request; path is relative to the base, query a URLSearchParams. */
  async handle({ method, path, query, headers, body }) {
    try {
      const route = this.classify(method, path);
      if (!route) {
        return this.outcome(notFoundOutcome(`No route for ${method} ${path || '/'}`));
      }
      if (route.interaction === 'batch') {
        return await this.bundle(body);
      }
      if (route.interaction === 'search-type') {
        const params = method === 'POST' ? mergeParams(query, body) : query;
        return await this.search(route.resourceType, params);
      }
      if (route.resourceType && !isKnownType(route.resourceType)) {
        return this.outcome(notFoundOutcome(`Unknown resource type ${route.resourceType}`));
      }
      const existed =
        route.interaction === 'update' && route.id ? this.repo.exists(route.resourceType, route.id) : true;
      const qs = query.toString();
      const [outcome, resource] = await this.router.handleRequest(
        {
          method,
          url: qs ? `${path}?${qs}` : path,
          pathname: '',
          params: {},
          query: {},
          body,
          headers: normaliseIfMatch(headers),
          config: { transactions: true },
        },
        this.repo,
      );
      let status = getStatus(outcome);
      if (status === 200 && !existed) {
        status = 201;
      }
      if (!resource || status >= 400) {
        return this.outcome(outcome, status);
      }
      if (resource.resourceType === 'Bundle' && route.interaction === 'history-instance') {
        return { status, body: this.historyBundle(resource) };
      }
      return this.resourceResponse(status, resource, route.interaction);
    } catch (err) {
      return this.failure(err);
    }
  }

  /** Runs a type search with paging; returns the searchset with self/next/previous links. */
  async search(resourceType, params) {
    if (!isKnownType(resourceType)) {
      return this.outcome(notFoundOutcome(`Unknown resource type ${resourceType}`));
    }
    const wanted = params.get('_summary') === 'count' ? 0 : toInt(params.get('_count'));
    const count = Math.min(Math.max(wanted ?? DEFAULT_PAGE_SIZE, 0), MAX_PAGE_SIZE);
    const offset = Math.max(toInt(params.get('_offset')) ?? 0, 0);
    const page = new URLSearchParams(params);
    page.set('_count', String(count));
    page.set('_offset', String(offset));
    const [outcome, bundle] = await this.router.handleRequest(
      { method: 'GET', url: `${resourceType}?${page}`, pathname: '', params: {}, query: {}, body: undefined },
      this.repo,
    );
    if (!bundle) {
      return this.outcome(outcome);
    }
    const link = [{ relation: 'self', url: this.searchUrl(resourceType, page) }];
    if (count > 0 && offset + count < bundle.total) {
      link.push({ relation: 'next', url: this.searchUrl(resourceType, page, offset + count) });
    }
    if (offset > 0) {
      link.push({
        relation: 'previous',
        url: this.searchUrl(resourceType, page, Math.max(offset - count, 0)),
      });
    }
    const entry = (bundle.entry ?? []).map((e) => ({ fullUrl: this.fullUrl(e.resource), ...e }));
    return {
      status: 200,
      body: { resourceType: 'Bundle', type: 'searchset', total: bundle.total, link, entry },
    };
  }

  /** Processes a transaction or batch Bundle posted to the base. */
  async bundle(body) {
    if (body?.resourceType !== 'Bundle' || !['batch', 'transaction'].includes(body.type)) {
      return this.outcome(badRequest('POST to the base takes a batch or transaction Bundle'));
    }
    for (const entry of body.entry ?? []) {
      if (entry.request?.url) {
        entry.request.url = this.relative(entry.request.url);
      }
    }
    const req = {
      method: 'POST',
      url: '',
      pathname: '',
      params: {},
      query: {},
      body,
      config: { transactions: true },
    };
    const result = await new SandboxBatchProcessor(this.router, this.repo, body, req).run();
    result.entry = (result.entry ?? []).map((entry) => this.bundleResponseEntry(entry));
    return { status: 200, body: result };
  }

  bundleResponseEntry(entry) {
    const resource = entry?.resource;
    const response = { ...entry?.response };
    const status = Number(response.status);
    if (resource?.meta?.versionId && status < 300) {
      response.etag = `W/"${resource.meta.versionId}"`;
      response.lastModified = resource.meta.lastUpdated;
      response.location = `${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
    if (resource?.resourceType === 'OperationOutcome' || response.outcome?.id === 'ok') {
      delete response.outcome;
    }
    return resource?.id ? { fullUrl: this.fullUrl(resource), resource, response } : { response };
  }

  historyBundle(bundle) {
    const versions = bundle.entry ?? [];
    const entry = versions.map((e, i) => ({
      fullUrl: this.fullUrl(e.resource),
      resource: e.resource,
      request: {
        method: i === versions.length - 1 ? 'POST' : 'PUT',
        url:
          i === versions.length - 1 ? e.resource.resourceType : `${e.resource.resourceType}/${e.resource.id}`,
      },
      response: {
        status: i === versions.length - 1 ? '201' : '200',
        etag: `W/"${e.resource.meta.versionId}"`,
        lastModified: e.resource.meta.lastUpdated,
      },
    }));
    return { resourceType: 'Bundle', type: 'history', total: entry.length, entry };
  }

  resourceResponse(status, resource, interaction) {
    const headers = {};
    const version = resource.meta?.versionId;
    if (version) {
      headers.ETag = `W/"${version}"`;
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (['create', 'update', 'patch'].includes(interaction)) {
        headers.Location = `${this.fullUrl(resource)}/_history/${version}`;
      }
    }
    return { status, body: resource, headers };
  }

  outcome(outcome, status = getStatus(outcome)) {
    const body = { ...outcome };
    delete body.id;
    return { status, body };
  }

  failure(err) {
    const outcome = normalizeOperationOutcome(err);
    const status = err instanceof OperationOutcomeError ? getStatus(outcome) : 500;
    if (status >= 500) {
      process.stderr.write(`fhir-server: internal error: ${String(err?.message ?? err).slice(0, 200)}\n`);
      return this.outcome(serverErrorOutcome(), 500);
    }
    return this.outcome(outcome, status);
  }

  fullUrl(resource) {
    return `${this.publicBase}/${resource.resourceType}/${resource.id}`;
  }

  searchUrl(resourceType, params, offset) {
    const p = new URLSearchParams(params);
    if (offset !== undefined) {
      p.set('_offset', String(offset));
    }
    return `${this.publicBase}/${resourceType}?${p}`;
  }

  relative(url) {
    const trimmed = url.startsWith(this.publicBase) ? url.slice(this.publicBase.length) : url;
    return trimmed.replace(/^\/+/, '');
  }
}

function isKnownType(resourceType) {
  return Boolean(isResourceType(resourceType));
}

function normaliseIfMatch(headers) {
  const value = headers['if-match'];
  if (value && !value.includes('"')) {
    return { ...headers, 'if-match': `W/"${value.trim()}"` };
  }
  return headers;
}

function mergeParams(query, body) {
  const merged = new URLSearchParams(query);
  for (const [k, v] of new URLSearchParams(typeof body === 'string' ? body : '')) {
    merged.append(k, v);
  }
  return merged;
}

function toInt(value) {
  if (value === null || value === undefined || !/^-?\d+$/.test(value)) {
    return undefined;
  }
  return Number.parseInt(value, 10);
}

function notFoundOutcome(text) {
  return {
    resourceType: 'OperationOutcome',
    id: 'not-found',
    issue: [{ severity: 'error', code: 'not-found', details: { text } }],
  };
}

function serverErrorOutcome() {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: 'exception', details: { text: 'Internal server error' } }],
  };
}
