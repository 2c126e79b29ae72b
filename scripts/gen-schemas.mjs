// Writes the editor schemas (schemas/*.schema.json) from the zod schemas in the build, so the
// `# yaml-language-server: $schema=…` line in every shipped YAML file completes and checks it.
import { writeFileSync, mkdirSync } from 'node:fs';
import { z } from 'zod';
import { ScenarioSchema, TopologySchema } from '../dist/harness/scenario/schema.js';

mkdirSync(new URL('../schemas/', import.meta.url), { recursive: true });
for (const [name, schema] of [
  ['scenario', ScenarioSchema],
  ['topology', TopologySchema],
]) {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  json.title = `meshbench ${name}`;
  writeFileSync(new URL(`../schemas/${name}.schema.json`, import.meta.url), JSON.stringify(json, null, 2) + '\n');
}
