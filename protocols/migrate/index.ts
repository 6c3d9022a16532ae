/**
 * @packageDocumentation
 *
 * `/goto/migrate/1.0.0`: the migration session between a source and a target.
 *
 *   source                         target
 *   offer (signed spec) ─────────▶ admission checks
 *                       ◀───────── accept {token} | reject {code}
 *   transfer {token}    ─────────▶ token checked, single use
 *   blob, data…, blob-end ───────▶ hashed on arrival, loaded / extracted
 *                       ◀───────── ok
 *   prepare (signed manifest) ───▶ every hash and the signature checked
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
