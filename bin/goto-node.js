#!/usr/bin/env node
// Runs the built CLI (npm run build writes dist/); from a checkout without a
// build, Node >= 22.18 runs the TypeScript sources directly.
import { existsSync } from 'node:fs'

const built = new URL('../dist/node/cli/index.js', import.meta.url)
await import(existsSync(built) ? built.href : new URL('../node/cli/index.ts', import.meta.url).href)
