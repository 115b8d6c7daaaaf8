// Issue 13 §3: `npx skillrun-client codegen URL > skills.ts` writes typed inputs
// and outputs for every skill a server serves — a user's own skills included —
// for `client.stream()` / `execute()`; `tsc --strict` rejects wrong inputs
// (each `@ts-expect-error` line must be an error), and the code runs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { API_KEY, PKG, startServer } from './helpers.js';

const GREET = `id: acme.greet
version: "1.0.0"
description: Greets someone, a number of times.
inputs:
  type: object
  additionalProperties: false
  required: [name]
  properties:
    name: { type: string, minLength: 1 }
    times: { type: integer, minimum: 1, maximum: 5, default: 1 }
outputs:
  greeting:
    value: \${inputs.name}
    schema: { type: string }
  times:
    value: \${inputs.times}
    schema: { type: integer }
steps:
  - id: wait
    uses: util.sleep
    input: { ms: 0 }
`;

const USAGE = `import { createClient } from './skills.js';

declare const process: { env: Record<string, string | undefined> }; // no @types/node here

const client = createClient({ baseUrl: process.env.URL ?? '', apiKey: process.env.KEY ?? '' });
const result = await client.execute('acme.greet', { inputs: { name: 'Ada', times: 2 } });
const greeting: string | undefined = result.outputs.greeting;
const events: string[] = [];
const stream = client.stream('acme.greet', { inputs: { name: 'Bo' } });
for await (const event of stream) events.push(event.type);
const streamed: number | undefined = (await stream.result()).outputs.times;
const summary = await client.execute('text.summarize', { inputs: { text: 'Cats purr. Dogs bark.', max_sentences: 1 } });
console.log(JSON.stringify({ greeting, times: result.outputs.times, events, streamed, summary: summary.outputs.summary }));

export async function wrong(): Promise<void> {
  // @ts-expect-error name must be a string
  await client.execute('acme.greet', { inputs: { name: 3 } });
  // @ts-expect-error a misspelt input
  await client.execute('acme.greet', { inputs: { nme: 'Ada' } });
  // @ts-expect-error the required name is missing
  await client.execute('acme.greet', { inputs: {} });
  // @ts-expect-error not a served skill
  await client.execute('acme.nope', { inputs: {} });
  // @ts-expect-error times is an integer, not a string
  client.stream('acme.greet', { inputs: { name: 'Ada', times: '2' } });
  // @ts-expect-error greeting is a string, not a number
  const n: number = result.outputs.greeting;
  void n;
}
`;

let server;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'skillrun-codegen-'));
  mkdirSync(join(dir, 'skills'));
  writeFileSync(join(dir, 'skills', 'acme.greet.yaml'), GREET);
  server = await startServer({ SKILLRUN_SKILLS: join(dir, 'skills') });
});

after(async () => {
  await server?.stop();
});

test('codegen from a server with a user skill: tsc --strict rejects wrong inputs, and the code runs', { timeout: 180_000 }, () => {
  const app = join(dir, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(PKG, join(app, 'node_modules', 'skillrun-client'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module' }));
  // No key: the served spec is public.
  const code = execFileSync(process.execPath, [join(PKG, 'bin', 'skillrun-client.mjs'), 'codegen', server.url], { encoding: 'utf8' });
  assert.match(code, /"acme\.greet": \{ inputs: components\['schemas'\]\['AcmeGreetInputs'\]/);
  writeFileSync(join(app, 'skills.ts'), code);
  writeFileSync(join(app, 'usage.ts'), USAGE);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM', 'DOM.Iterable'],
      types: [], strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, outDir: 'out', skipLibCheck: false },
    files: ['usage.ts', 'skills.ts'],
  }));
  try {
    execFileSync(process.execPath, [join(PKG, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, stdio: 'pipe' });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
  const out = execFileSync(process.execPath, [join(app, 'out', 'usage.js')], {
    cwd: app, encoding: 'utf8', env: { ...process.env, URL: server.url, KEY: API_KEY },
  });
  const got = JSON.parse(out);
  assert.equal(got.greeting, 'Ada');
  assert.equal(got.times, 2);
  assert.equal(got.events.at(-1), 'done');
  assert.equal(got.streamed, 1);
  assert.equal(typeof got.summary, 'string');
});

test('codegen exits 2 with a reason for a server without skills, and names a missing spec', async () => {
  const { render, typeName } = await import('../bin/skillrun-client.mjs');
  await assert.rejects(render({ paths: {} }, 'x'), /serves no skills/);
  assert.equal(typeName('text.summarize'), 'TextSummarize');
  assert.equal(typeName('9lives'), 'Skill9lives');
  let status = 0;
  try {
    execFileSync(process.execPath, [join(PKG, 'bin', 'skillrun-client.mjs'), 'codegen', `${server.url}/nothing.json`], { stdio: 'pipe' });
  } catch (err) {
    status = err.status;
    assert.match(String(err.stderr), /HTTP 404/);
  }
  assert.equal(status, 2);

});
