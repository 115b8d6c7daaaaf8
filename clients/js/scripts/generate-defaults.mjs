// Writes src/generated/defaults.ts from openapi/skillrun.yaml's
// info.x-skillrun-client-defaults: the behaviour table both clients share
// (the Python client generates skillrun_client/_generated/defaults.py from it).
//   node scripts/generate-defaults.mjs [--output FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SPEC = join(PKG, '..', '..', 'openapi', 'skillrun.yaml');

/** The text src/generated/defaults.ts must have for the spec at `spec`. */
export function renderDefaults(spec = SPEC) {
  const table = yaml.load(readFileSync(spec, 'utf8')).info['x-skillrun-client-defaults'];
  const lines = Object.entries(table).map(([name, value]) => `  ${name}: ${JSON.stringify(value)},`);
  return [
    '/**',
    ' * Client defaults from openapi/skillrun.yaml (info.x-skillrun-client-defaults).',
    ' * Do not edit: run `npm run generate`. The Python client generates the same table.',
    ' */',
    'export const CLIENT_DEFAULTS = {',
    ...lines,
    '} as const;',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--output');
  const out = at > 0 ? process.argv[at + 1] : join(PKG, 'src', 'generated', 'defaults.ts');
  writeFileSync(out, renderDefaults());
  console.log(`wrote ${out}`);
}
