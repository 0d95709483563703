// Starts the Cloud Storage emulator from the npm package firebase-tools on
// 127.0.0.1 for the end-to-end tests (tests/e2e/gcs.py runs this script).
//
//   node gcs_emulator.js --port PORT [--project P] [--modules DIR]
//
// Prints "ready PORT" on stdout once the port accepts connections; exits on
// SIGTERM/SIGINT, or when stdin closes (so a test runner that dies does not
// leave it behind).
//
// Why not `firebase emulators:start`: the CLI requires Java 21 and downloads
// the storage rules engine (a jar). The storage emulator itself is plain Node;
// only its rules runtime needs the jar, and admin-style access (what logferry
// does, with a bearer token) never consults rules. So the rules runtime's start
// is replaced by a no-op, which also guarantees the emulator never downloads
// anything or talks to any host but 127.0.0.1.
//
// Blobs are kept under os.tmpdir()/firebase/storage/blobs, and stopping
// deletes that directory: gcs.py gives every instance its own TMPDIR so an
// emulator that stops does not delete the objects of one still running.
"use strict";

const path = require("path");

function parseArgs(argv) {
  const args = {
    port: 0,
    project: "logferry-test",
    modules: path.join(__dirname, "..", "..", ".deps", "firebase-tools", "node_modules"),
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${key}`);
    if (key === "--port") args.port = Number(value);
    else if (key === "--project") args.project = value;
    else if (key === "--modules") args.modules = value;
    else throw new Error(`unknown option ${key}`);
  }
  if (!Number.isInteger(args.port) || args.port <= 0 || args.port > 65535) {
    throw new Error("--port PORT is required");
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv);
  const lib = path.join(args.modules, "firebase-tools", "lib", "emulator");

  // Must be patched before the emulator is constructed: StorageEmulator.start
  // awaits the rules runtime first, which would look for (and, with
  // auto_download, fetch) the rules jar.
  const { StorageRulesRuntime } = require(path.join(lib, "storage", "rules", "runtime.js"));
  StorageRulesRuntime.prototype.start = async function () {};
  StorageRulesRuntime.prototype.stop = async function () {};

  const { StorageEmulator } = require(path.join(lib, "storage", "index.js"));
  const { EmulatorRegistry } = require(path.join(lib, "registry.js"));

  const emulator = new StorageEmulator({
    projectId: args.project,
    host: "127.0.0.1",
    port: args.port,
    rules: [],
    auto_download: false,
  });
  // Resolves once the port accepts connections (registry.js waitForPortUsed).
  await EmulatorRegistry.start(emulator);
  process.stdout.write(`ready ${args.port}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await EmulatorRegistry.stop(emulator.getName());
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write(`gcs_emulator: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
