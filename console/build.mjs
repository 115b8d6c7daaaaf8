// Builds the console into the Python package (service/skillrun/console_static), which
// the server serves at /ui/. The output is committed (like the clients' generated
// types); tests/test_console_bundle.py rebuilds into a temporary folder and fails when
// the committed files differ. Usage: node build.mjs [--out DIR]
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const argOut = process.argv.indexOf('--out');
const OUT = resolve(argOut > 0 ? process.argv[argOut + 1] : join(HERE, '../service/skillrun/console_static'));
const ASSETS = join(OUT, 'assets');

rmSync(ASSETS, { recursive: true, force: true });
mkdirSync(ASSETS, { recursive: true });
const result = await esbuild.build({
  absWorkingDir: HERE,
  entryPoints: ['src/main.ts', 'src/style.css'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  // Hashed names: the server marks them immutable; index.html (no-cache) names them.
  entryNames: '[name]-[hash]',
  outdir: ASSETS,
  metafile: true,
  legalComments: 'eof',
  logLevel: 'warning',
});
const built = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = built.find((n) => n.startsWith('main-') && n.endsWith('.js'));
const css = built.find((n) => n.startsWith('style-') && n.endsWith('.css'));
const template = readFileSync(join(HERE, 'src/index.html'), 'utf8');
// The server rewrites <base href> to the path it is served under (--root-path).
writeFileSync(join(OUT, 'index.html'), template.replace('%CSS%', `assets/${css}`).replace('%JS%', `assets/${js}`));
console.log(`built ${OUT}: ${[...built, 'index.html'].join(', ')}`);
