/**
 * @packageDocumentation
 *
 * `/goto/migrate/2.0.0`: the migration session between a source and a target.
 *
 *   source                         target
 *   offer (signed spec) ─────────▶ admission checks
 *                       ◀───────── accept {token} | reject {code}
 *   transfer {token}    ─────────▶ token checked, single use
 *                       ◀───────── ok
 *   [pre-copy, the container still running:
 *    blob pre:…, recipe…, blob-end ▶ the chunks it lacks pulled over /goto/chunks/1.0.0
 *   sync                ─────────▶ every chunk named so far is stored
 *                       ◀───────── ok]
 *   (freeze, final snapshot)
 *   blob, recipe…, blob-end ─────▶ the chunks it still lacks pulled
 *   prepare (signed manifest) ───▶ recipes, lengths, hashes and the signature checked;
 *                                  streams rebuilt from the store into the engine
 *                       ◀───────── prepared
 *   (source stops its original, journals the decision)
 *   commit              ─────────▶ start, check it runs (and is healthy)
 *                       ◀───────── activated
 *
 * A new stream may carry `query` (→ outcome), `commit` (resent after a cut),
 * `abort` or `rollback` for a migration both sides already know.
 *
 * @example
 * ```ts
 * const s = session(stream)
 * await s.send({ type: 'query', id })
 * const { phase } = await s.expect('outcome')
 * ```
 */
export * from './constants.ts'
export * from './errors.ts'
export * from './messages.ts'
export * from './session.ts'
export * from './state.ts'
