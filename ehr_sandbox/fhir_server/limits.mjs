// Simulated EHR limits: resource types that are read-only here, and no transaction support. The
// CapabilityStatement says so (capability.mjs) and the adapter refuses what it does not declare.
import { HttpError } from './errors.mjs';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Parses `--read-only-types A,B` into a Set of resource types. */
export function parseTypes(value) {
  return new Set((value ?? '').split(',').map((t) => t.trim()).filter(Boolean));
}

function typeOf(url) {
  return String(url ?? '').replace(/^\/+/, '').split(/[/?]/)[0];
}

function refuseType(type) {
  return new HttpError(405, 'not-supported', `${type} is read-only on this server`);
}

/** Throws a 405 HttpError for a request this server declares it does not support. */
export function checkLimits({ readOnlyTypes, noTransaction }, { method, path, body }) {
  if (!WRITES.has(method)) {
    return;
  }
  if (path === '' && method === 'POST' && body && typeof body === 'object') {
    if (body.type === 'transaction' && noTransaction) {
      throw new HttpError(405, 'not-supported', 'This server does not support transactions');
    }
    for (const entry of body.entry ?? []) {
      const type = typeOf(entry.request?.url);
      if (WRITES.has(entry.request?.method) && readOnlyTypes.has(type)) {
        throw refuseType(type);
      }
    }
    return;
  }
  const type = typeOf(path);
  if (readOnlyTypes.has(type)) {
    throw refuseType(type);
  }
}
