// The generated types match the spec today, and the public types compile as documented.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PKG } from './helpers.js';

const bin = (name) => join(PKG, 'node_modules', '.bin', name);

test('src/generated/schema.ts is what openapi-typescript makes of openapi/skillrun.yaml now', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'skillrun-gen-')), 'schema.ts');
  const script = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')).scripts['generate:types'];
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

/** The public surface as TypeScript sees it: each export of src/index.ts, with its members. */
async function publicSurface() {
  const { default: ts } = await import('typescript');
  const parsed = ts.getParsedCommandLineOfConfigFile(join(PKG, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(String(d.messageText)),
  });
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
  const checker = program.getTypeChecker();
  const entry = checker.getSymbolAtLocation(program.getSourceFile(join(PKG, 'src', 'index.ts')));
  const fromSrc = (sym) =>
    (sym.declarations ?? []).some((d) => d.getSourceFile().fileName.startsWith(join(PKG, 'src')));
  const doc = (sym) => ts.displayPartsToString(sym.getDocumentationComment(checker)).trim();
  const items = [];
  const visit = (name, type, depth) => {
    if (depth > 2) return;
    for (const member of checker.getPropertiesOfType(type)) {
      if (!fromSrc(member) || /^(__@|#)/.test(member.getName())) continue; // symbol-keyed, #private
      const decl = member.declarations?.[0];
      if (decl && ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Private) continue;
      const full = `${name}.${member.getName()}`;
      items.push({ name: full, doc: doc(member) });
      // An object-literal member (client.runs, client.skills): its members too.
      if (decl && ts.isPropertySignature(decl) && decl.type && ts.isTypeLiteralNode(decl.type)) {
        visit(full, checker.getTypeAtLocation(decl.type), depth + 1);
      }
    }
  };
  for (const exported of checker.getExportsOfModule(entry)) {
    const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    items.push({ name: exported.getName(), doc: doc(sym) });
    if (sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
      visit(exported.getName(), checker.getDeclaredTypeOfSymbol(sym), 0);
    }
  }
  return items;
}

test('TSDoc on every public export and member', async () => {
  const items = await publicSurface();
  assert.ok(items.some((i) => i.name === 'Client.runs.events'), 'the walk reaches nested members');
  assert.ok(items.some((i) => i.name === 'SkillStream.result'));
  assert.deepEqual(
    items.filter((i) => i.doc === '').map((i) => i.name),
    [],
  );
});

test('every event of the contract has its own exported type', async () => {
  const names = new Set((await publicSurface()).map((i) => i.name));
  const schema = readFileSync(join(PKG, 'src', 'generated', 'schema.ts'), 'utf8');
  const union = /^ {8}SkillEvent: (.*);$/m.exec(schema)?.[1];
  assert.ok(union, 'SkillEvent union not found in the generated schema');
  const members = [...union.matchAll(/\["schemas"\]\["(\w+)"\]/g)].map((m) => m[1]);
  assert.ok(members.length >= 11, members.join());
  assert.deepEqual(
    members.filter((m) => !names.has(m)),
    [],
  );
});

// Node 18 is the floor (package.json engines). tsconfig's lib ES2022 already
// rejects newer built-ins (toSorted, Object.groupBy, Promise.withResolvers …);
// the DOM lib does not know Node's age, so these platform APIs are kept out by name.
const NEWER_THAN_NODE_18 = [
  ['AbortSignal.any', /AbortSignal\.any\b/],
  ['ReadableStream.from', /ReadableStream\.from\b/],
  ['Response.json (static)', /Response\.json\(/],
  ['URL.canParse / URL.parse', /URL\.(canParse|parse)\b/],
  ['Array.fromAsync', /Array\.fromAsync\b/],
  ['Promise.withResolvers', /Promise\.withResolvers\b/],
  ['navigator', /\bnavigator\./],
  ['async iteration of a ReadableStream (not in browsers either)', /for await \([^)]*\bof\s+[\w.]*body\b/],
  ['crypto without a fallback (a global only from Node 19)', /(?<!globalThis\.)\bcrypto\.\w/],
  ['explicit resource management', /\busing\s+\w+\s*=|Symbol\.(async)?[dD]ispose/],
];

test('src/ uses no platform API newer than Node 18', () => {
  const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  assert.equal(pkg.engines.node, '>=18');
  const tsconfig = readFileSync(join(PKG, 'tsconfig.json'), 'utf8');
  assert.match(tsconfig, /"target": "ES2022"/);
  assert.match(tsconfig, /"lib": \["ES2022", "DOM", "DOM.Iterable"\]/);
  const found = [];
  for (const file of readdirSync(join(PKG, 'src'))) {
    if (!file.endsWith('.ts')) continue;
    // Code only: comments may name what the code avoids.
    const text = readFileSync(join(PKG, 'src', file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:])\/\/.*$/gm, '$1');
    for (const [what, pattern] of NEWER_THAN_NODE_18) if (pattern.test(text)) found.push(`${file}: ${what}`);
  }
  assert.deepEqual(found, []);
});
