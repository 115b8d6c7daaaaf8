// `npm install ./clients/js` from a checkout gave ERR_MODULE_NOT_FOUND: dist/ is
// not in git. The `prepare` script builds it (installing the compiler first
// when the checkout has no node_modules), so installing from a path works.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { PKG } from './helpers.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('installing the package from a fresh checkout path gives a working import', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'skillrun-install-'));
  // A fresh clone's clients/js: the files git tracks, no node_modules, no dist.
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: PKG, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of tracked) {
    mkdirSync(dirname(join(dir, 'js', file)), { recursive: true });
    cpSync(join(PKG, file), join(dir, 'js', file));
  }
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
  execFileSync(npm, ['install', '../js', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'pipe' });
  const out = execFileSync(process.execPath, ['-e', "import('skillrun-client').then((m) => console.log(typeof m.createClient))"], {
    cwd: app,
    encoding: 'utf8',
  });
  assert.equal(out.trim(), 'function');
});
