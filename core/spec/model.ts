/** The typed model of our kinds, generated from crds/ (see model.generated.ts), plus derived helpers. */
export type * from './model.generated.js';
