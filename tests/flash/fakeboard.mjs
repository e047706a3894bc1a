// FakeBoard: a Pico W as seen from its USB serial port, for `iotctl device flash` tests.
//
// What is fake: the serial link and USB (a pseudo-terminal whose master end this script holds) and the REPL's
// framing, which this script implements (MicroPython's raw REPL protocol, as in micropython/shared/runtime/
// pyexec.c). What is real: every line of Python sent by mpremote runs in the real MicroPython interpreter (the
// WebAssembly port pinned in tests/firmware/mpy/package-lock.json), with its in-memory filesystem as the flash.
//
//   node fakeboard.mjs --fd N [options]        (N: the PTY master, inherited from the test)
//
// Options (each simulates one board condition):
//   --version X.Y.Z      report this `sys.implementation.version` (an older MicroPython)
//   --free-kib N         `os.statvfs('/')` reports N KiB free (a nearly full flash)
//   --online-line TEXT   after a soft reset in the friendly REPL, print TEXT as the firmware would once online
//   --heartbeat-ms N     in the friendly REPL, print `heartbeat <n>` every N ms (a running firmware's log)
//   --no-raw-paste       answer the raw-paste request `R\x00` (unsupported), as older firmware does
//
// Protocol: friendly REPL (`>>> `); Ctrl-A enters the raw REPL (`raw REPL; CTRL-B to exit\r\n>`); in the raw
// REPL, Ctrl-D executes the buffered code and answers `OK`, stdout, `\x04`, stderr (traceback), `\x04`, `>`;
// Ctrl-D on an empty buffer soft-resets; Ctrl-B returns to the friendly REPL; Ctrl-C clears the buffer; the
// raw-paste request `\x05A\x01` is answered `R\x01` + a 512-byte window with `\x01` for each further window, then
// `\x04` at the end (or `R\x00`, unsupported, with --no-raw-paste, so mpremote falls back to the raw REPL). A soft
// reset starts a fresh interpreter on the same filesystem. The friendly REPL does not execute typed lines.
// Prints `ready` on stdout once it listens.

import fs from "node:fs";
import path from "node:path";
import tty from "node:tty";
import url from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "firmware", "mpy", "package.json"));
const mpyModule = require.resolve("@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(url.pathToFileURL(mpyModule).href);

const opts = { rawPaste: true, fd: null, version: null, freeKib: null, onlineLine: null, heartbeatMs: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [key, value] = [argv[i], argv[i + 1]];
  if (key === "--no-raw-paste") {
    opts.rawPaste = false;
    i -= 1;
  } else if (key === "--fd") opts.fd = Number(value);
  else if (key === "--version") opts.version = value;
  else if (key === "--free-kib") opts.freeKib = Number(value);
  else if (key === "--online-line") opts.onlineLine = value;
  else if (key === "--heartbeat-ms") opts.heartbeatMs = Number(value);
  else {
    console.error(`fakeboard: unknown option ${key}`);
    process.exit(2);
  }
}
if (opts.fd === null) {
  console.error("usage: node fakeboard.mjs --fd N [--version X.Y.Z] [--free-kib N] [--online-line TEXT]");
  process.exit(2);
}

const fd = opts.fd;
const enc = new TextEncoder();

function send(data) {
  let buf = typeof data === "string" ? Buffer.from(enc.encode(data)) : Buffer.from(data);
  const deadline = Date.now() + 10000;
  while (buf.length > 0) {
    try {
      const n = fs.writeSync(fd, buf);
      buf = buf.subarray(n);
    } catch (err) {
      if (err.code !== "EAGAIN" || Date.now() > deadline) throw err;
    }
  }
}

// ---- the interpreter ("the chip"); a soft reset replaces it and carries the filesystem over ----

let captured = [];
let mp = null;
const SKIP = new Set(["dev", "proc", "tmp", "home"]);

function snapshot(fsys, dir, out) {
  for (const name of fsys.readdir(dir)) {
    if (name === "." || name === "..") continue;
    if (dir === "/" && SKIP.has(name)) continue;
    const p = (dir === "/" ? "" : dir) + "/" + name;
    if (fsys.isDir(fsys.stat(p).mode)) {
      out.push([p, null]);
      snapshot(fsys, p, out);
    } else out.push([p, fsys.readFile(p)]);
  }
  return out;
}

// The WebAssembly port's filesystem is Emscripten's, whose OSError numbers are WASI's (ENOENT 44, EEXIST 20, EACCES
// 2); a Pico W's are MicroPython's (ENOENT 2, EEXIST 17, EACCES 13), and mpremote reads them as such (a missing file
// must be ENOENT to `fs_exists`). The prelude re-raises the os module's errors with the board's numbers.
const WASI_TO_MICROPYTHON_ERRNO = { 63: 1, 44: 2, 8: 9, 2: 13, 20: 17, 54: 20, 31: 21, 28: 22, 51: 28, 55: 39 };
const FS_FUNCTIONS = ["chdir", "ilistdir", "listdir", "mkdir", "remove", "rename", "rmdir", "stat"];

function prelude() {
  const lines = ["import os, sys"];
  const map = Object.entries(WASI_TO_MICROPYTHON_ERRNO).map(([k, v]) => `${k}: ${v}`).join(", ");
  lines.push(
    "def _board_errno(f, table={" + map + "}):",
    "    def call(*args):",
    "        try:",
    "            return f(*args)",
    "        except OSError as e:",
    "            raise OSError(table.get(e.errno, e.errno))",
    "    return call",
    ...FS_FUNCTIONS.map((name) => `os.${name} = _board_errno(os.${name})`),
    "del _board_errno",
  );
  if (opts.freeKib !== null) {
    const blocks = Math.floor((opts.freeKib * 1024) / 4096);
    lines.push(`os.statvfs = lambda p: (4096, 4096, 212, ${blocks}, ${blocks}, 0, 0, 0, 0, 255)`);
  }
  if (opts.version !== null) {
    const v = opts.version.split(".").map(Number);
    lines.push(
      "class _Impl:",
      "    name = 'micropython'",
      `    version = (${v[0]}, ${v[1]}, ${v[2] || 0}, '')`,
      "    _machine = sys.implementation._machine",
      "class _Sys:",
      "    implementation = _Impl",
      "    def __getattr__(self, n):",
      "        return getattr(sys, n)",
      "sys.modules['sys'] = _Sys()",
    );
  }
  lines.push("del os, sys");
  return lines.join("\n");
}

async function boot() {
  const files = mp ? snapshot(mp.FS, "/", []) : [];
  mp = await loadMicroPython({
    heapsize: 8 * 1024 * 1024,
    linebuffer: false,
    stdout: (b) => captured.push(b),
    stderr: (b) => captured.push(b),
  });
  for (const name of ["tmp", "home/web_user", "home"]) {
    try {
      mp.FS.rmdir("/" + name);
    } catch {
      // not removable in this build: the board's listing skips it anyway
    }
  }
  for (const [p, data] of files) {
    if (data === null) mp.FS.mkdirTree(p);
    else mp.FS.writeFile(p, data);
  }
  mp.runPython(prelude());
}

function execute(code) {
  captured = [];
  let error = "";
  try {
    mp.runPython(code);
  } catch (err) {
    error = String(err && err.message !== undefined ? err.message : err);
  }
  const out = Buffer.concat(captured.map((b) => Buffer.from(b)));
  captured = [];
  return [out, error];
}

// ---- the REPL state machine ----

const BANNER = "MicroPython v1.27.0 on 2025-12-10; Raspberry Pi Pico W with RP2040 (FakeBoard)\r\n";
let mode = "friendly";
let line = [];
let pending = Promise.resolve();
let heartbeat = 0;
let pasteHeader = [];
let pasteRemain = 0;
const PASTE_WINDOW = 512;

async function softReset() {
  send("MPY: soft reboot\r\n");
  await boot();
  if (mode === "raw") {
    send("raw REPL; CTRL-B to exit\r\n>");
  } else {
    if (opts.onlineLine) send(opts.onlineLine + "\r\n");
    send(BANNER + 'Type "help()" for more information.\r\n>>> ');
  }
}

async function onByte(c) {
  if (mode === "friendly") {
    if (c === 0x01) {
      mode = "raw";
      line = [];
      send("\r\nraw REPL; CTRL-B to exit\r\n>");
    } else if (c === 0x03) {
      line = [];
      send("\r\n>>> ");
    } else if (c === 0x04) {
      await softReset();
    } else if (c === 0x0d) {
      line = [];
      send("\r\n>>> ");
    } else {
      line.push(c);
      send(Buffer.from([c]));
    }
    return;
  }
  if (mode === "raw-paste-request") {
    pasteHeader.push(c);
    if (pasteHeader.length === 2) {
      pasteHeader = [];
      if (opts.rawPaste) {
        mode = "raw-paste";
        pasteRemain = PASTE_WINDOW;
        send(Buffer.from([0x52, 0x01, PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8])); // "R\x01" + window size (LE)
      } else {
        mode = "raw";
        send("R\x00"); // raw-paste understood but not supported: mpremote falls back to the raw REPL
      }
    }
    return;
  }
  if (mode === "raw-paste") {
    if (c === 0x04) {
      mode = "raw";
      send("\x04"); // end of data acknowledged; the output follows as in the raw REPL
      const code = Buffer.from(line).toString("utf8");
      line = [];
      const [out, error] = execute(code);
      send(out);
      send("\x04");
      send(error.replace(/\n/g, "\r\n"));
      send("\x04>");
      return;
    }
    line.push(c);
    if (--pasteRemain === 0) {
      pasteRemain = PASTE_WINDOW;
      send("\x01"); // room for another window
    }
    return;
  }
  // raw REPL
  if (c === 0x05 && line.length === 0) {
    mode = "raw-paste-request";
    return;
  }
  if (c === 0x01) {
    line = [];
    send("\r\nraw REPL; CTRL-B to exit\r\n>");
  } else if (c === 0x02) {
    mode = "friendly";
    line = [];
    send("\r\n" + BANNER + 'Type "help()" for more information.\r\n>>> ');
  } else if (c === 0x03) {
    line = [];
  } else if (c === 0x04) {
    if (line.length === 0) {
      send("OK\r\n");
      await softReset();
      return;
    }
    const code = Buffer.from(line).toString("utf8");
    line = [];
    send("OK");
    const [out, error] = execute(code);
    send(out);
    send("\x04");
    send(error.replace(/\n/g, "\r\n"));
    send("\x04>");
  } else {
    line.push(c);
  }
}

function feed(c) {
  pending = pending.then(() => onByte(c));
}

await boot();
const input = new tty.ReadStream(fd);
input.setRawMode?.(true);
input.on("data", (chunk) => {
  for (const c of chunk) feed(c);
});
input.on("error", () => process.exit(0)); // the test closed its end: the board is unplugged
if (opts.heartbeatMs > 0) {
  setInterval(() => {
    if (mode === "friendly") send(`heartbeat ${++heartbeat}\r\n`);
  }, opts.heartbeatMs);
}
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("ready\n");
