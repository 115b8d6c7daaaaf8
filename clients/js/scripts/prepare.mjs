// npm's `prepare`: build dist/ so that the package works when installed from a
// path or a git checkout (`npm install ./clients/js`), where dist/ (not in git)
// would be missing. npm runs it for such an install without the package's
// devDependencies, so the compiler is installed here first when it is absent.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(PKG, 'node_modules', 'typescript', 'bin', 'tsc');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

if (!existsSync(tsc)) {
  // Only the compiler (the version the lock file pins), not the test toolchain.
  const version = JSON.parse((await import('node:fs')).readFileSync(join(PKG, 'package.json'), 'utf8')).devDependencies.typescript;
  execFileSync(npm, ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', `typescript@${version}`], {
    cwd: PKG,
    stdio: 'inherit',
  });
}
execFileSync(process.execPath, [tsc, '-p', join(PKG, 'tsconfig.json')], { cwd: PKG, stdio: 'inherit' });
