// The generated types match the spec today, and the public types compile as documented.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PKG } from './helpers.js';

const bin = (name) => join(PKG, 'node_modules', '.bin', name);

test('src/generated/schema.ts is what openapi-typescript makes of openapi/skillrun.yaml now', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'skillrun-gen-')), 'schema.ts');
  const script = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')).scripts.generate;
  const args = script.split(/\s+/).slice(1);
  args[args.indexOf('--output') + 1] = out;
  execFileSync(bin('openapi-typescript'), args, { cwd: PKG, stdio: 'pipe' });
  const fresh = readFileSync(out, 'utf8');
  const committed = readFileSync(join(PKG, 'src', 'generated', 'schema.ts'), 'utf8');
  assert.ok(fresh === committed, 'stale generated types: run `npm run generate` in clients/js and commit');
});

test('the usage file type-checks (tsc --noEmit), @ts-expect-error lines included', () => {
  try {
    execFileSync(bin('tsc'), ['-p', join(PKG, 'test', 'types', 'tsconfig.json')], { cwd: PKG, stdio: 'pipe' });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
});

test('package.json exports JS and types for ESM', () => {
  const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  assert.equal(pkg.type, 'module');
  assert.deepEqual(pkg.exports['.'], { types: './dist/index.d.ts', import: './dist/index.js' });
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), []);
});
