// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ioModules = [
  'fs', 'fs/promises', 'net', 'http', 'https', 'http2', 'tls', 'dgram', 'dns', 'child_process',
  'cluster', 'worker_threads', 'os', 'process', 'readline', 'vm', 'inspector', 'perf_hooks',
];
const ioPaths = ioModules.flatMap((m) => [m, `node:${m}`]).map((name) => ({
  name,
  message: 'core/ is pure: do I/O in an adapter and pass data in.',
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // The purity boundary of DESIGN §2: no I/O modules, no environment, no clock, no network in core.
    files: ['core/**/*.ts'],
    ignores: ['core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [...ioPaths, { name: '@kubernetes/client-node', message: 'core/ is pure: no Kubernetes client.' },
          { name: 'simple-git', message: 'core/ is pure: no git.' },
          { name: 'pino', message: 'core/ returns data; adapters log.' }],
      }],
      'no-restricted-globals': ['error',
        { name: 'process', message: 'core/ is pure: pass env and options in.' },
        { name: 'fetch', message: 'core/ is pure: no network.' },
        { name: 'setTimeout', message: 'core/ is pure: no timers.' },
        { name: 'setInterval', message: 'core/ is pure: no timers.' },
        { name: 'performance', message: 'core/ is pure: no clock.' },
        { name: 'require', message: 'core/ is ESM and pure.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "MemberExpression[object.name='Date'][property.name='now']", message: 'core/ is pure: take `now` as an argument.' },
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'core/ is pure: take `now` as an argument.' },
        { selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']", message: 'core/ is deterministic: no randomness.' },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // bench/rss-probe.cjs is preloaded with `node --require` into benchmarked processes: plain CommonJS.
    files: ['bench/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
