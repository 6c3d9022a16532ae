#!/usr/bin/env node
// The original design's `go-to` command (see node/cli/go-to.ts): runs the
// build, or from a checkout without one, the TypeScript sources.
import { existsSync } from 'node:fs'

const built = new URL('../dist/node/cli/go-to-index.js', import.meta.url)
await import(existsSync(built) ? built.href : new URL('../node/cli/go-to-index.ts', import.meta.url).href)
