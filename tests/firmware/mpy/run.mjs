// Run one MicroPython test script in the real MicroPython interpreter (the WebAssembly port, pinned in
// package-lock.json), with the firmware and the hardware fakes copied into its in-memory filesystem.
//
//   node run.mjs <script.py> [--artifacts <host dir>] [--data <host file>] [--loop <name>]
//
// Layout inside the interpreter:  /lib (firmware/lib, on sys.path as on the Pico), /main.py, /fakes (fakes of
// the hardware, first on sys.path so `import machine` finds them, and iotctl/simulate/bme280chip.py), /tests (the test scripts and their helper),
// /flash (an empty scratch root for the device's files), /artifacts (copied back to the host dir afterwards),
// /data/<name> (a copy of the --data file: test input prepared on the host).
// --loop NAME: after the script, call NAME() again and again, each call a separate runPython, until it returns
// a false value; after each call, `NAME_sample(gc.mem_alloc())` runs after gc.collect() in a runPython of its own.
// Why: this port's gc.collect() frees nothing while Python code is running (it cannot scan the WebAssembly
// stack); only between two runPython calls does it reclaim garbage. A long script that returns here now and
// then keeps its heap small (and fast), and its samples are the true live heap.
// Exit status: 0 when the script ran without an exception, 1 otherwise; the interpreter's output is printed.

import fs from "node:fs";
import path from "node:path";
import url from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..", "..");

const args = process.argv.slice(2);
let artifacts = null;
const ai = args.indexOf("--artifacts");
if (ai >= 0) {
  artifacts = args[ai + 1];
  args.splice(ai, 2);
}
let loop = null;
const li = args.indexOf("--loop");
if (li >= 0) {
  loop = args[li + 1];
  args.splice(li, 2);
}
let data = null;
const di = args.indexOf("--data");
if (di >= 0) {
  data = args[di + 1];
  args.splice(di, 2);
}
if (args.length !== 1) {
  console.error("usage: node run.mjs <script.py> [--artifacts <dir>] [--data <file>]");
  process.exit(2);
}
const script = path.resolve(args[0]);

function copyTree(mp, src, dest) {
  mp.FS.mkdirTree(dest);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    if (entry.name === "__pycache__" || entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const from = path.join(src, entry.name);
    const to = dest + "/" + entry.name;
    if (entry.isDirectory()) copyTree(mp, from, to);
    else if (entry.name.endsWith(".py")) mp.FS.writeFile(to, fs.readFileSync(from));
  }
}

function copyOut(mp, src, dest) {
  fs.mkdirSync(dest, { recursive: true });
  for (const name of mp.FS.readdir(src)) {
    if (name === "." || name === "..") continue;
    const from = src + "/" + name;
    if (mp.FS.isDir(mp.FS.stat(from).mode)) copyOut(mp, from, path.join(dest, name));
    else fs.writeFileSync(path.join(dest, name), mp.FS.readFile(from));
  }
}

const mp = await loadMicroPython({
  heapsize: 16 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

copyTree(mp, path.join(repo, "firmware", "lib"), "/lib");
mp.FS.writeFile("/main.py", fs.readFileSync(path.join(repo, "firmware", "main.py")));
copyTree(mp, path.join(repo, "tests", "firmware", "fakes"), "/fakes");
// The BME280's register map is the simulator's (one copy of the calibration packing); fakechips.py extends it.
mp.FS.writeFile("/fakes/bme280chip.py", fs.readFileSync(path.join(repo, "iotctl", "simulate", "bme280chip.py")));
copyTree(mp, path.join(repo, "tests", "firmware", "mpy_tests"), "/tests");
mp.FS.mkdirTree("/flash");
mp.FS.mkdirTree("/artifacts");
if (data) {
  mp.FS.mkdirTree("/data");
  mp.FS.writeFile("/data/" + path.basename(data), fs.readFileSync(data));
}

let failed = false;
try {
  mp.runPython("import sys\nsys.path.insert(0, '/tests')\nsys.path.insert(0, '/fakes')\n");
  mp.runPython(fs.readFileSync(script, "utf8"));
  while (loop) {
    mp.runPython(`__more__ = ${loop}()`);
    mp.runPython(`import gc\ngc.collect()\n${loop}_sample(gc.mem_alloc())`);
    if (!mp.globals.get("__more__")) break;
  }
} catch (err) {
  failed = true;
  // PythonError carries the MicroPython traceback in its message.
  process.stdout.write(String(err && err.message ? err.message : err) + "\n");
}
if (artifacts) copyOut(mp, "/artifacts", artifacts);
process.stdout.write(failed ? "FAILED " + path.basename(script) + "\n" : "PASSED " + path.basename(script) + "\n");
process.exit(failed ? 1 : 0);
