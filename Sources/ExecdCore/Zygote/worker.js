// execd's pre-started JavaScript worker: node, already started inside a fully locked-down one-shot sandbox
// (every privilege dropped and seccomp installed before node was exec'd), waiting for its one program.
//
// fd 3: the run's side channel (the judge's result records); this worker first writes "R" there when warm.
// fd 4: a stream socket to execd. execd writes the payload (a JSON header line, then the files' bytes back to back)
//       and shuts its side down; once the program is done, the worker says `DONE <wait status>` there (see below).
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

fs.unlinkSync(__filename);  // the run's /tmp holds only what the run was given
delete require.cache[__filename];  // as for `node /tmp/main.js`, the cache holds only the program's modules

// Warm-up, before any run's data exists. V8 compiles each function on its first call, and node builds
// process.stdout/stderr on first access: done here, that is ≈ 4 ms less per run (docs/pool.md). Nothing here writes
// a byte to stdout or stderr or leaves state a program could tell from that of `node /tmp/main.js`.
// Blocking stdout/stderr, as for a one-shot run (stdio.js's reasons).
for (const stream of [process.stdout, process.stderr]) {
  try { if (stream._handle && stream._handle.setBlocking) stream._handle.setBlocking(true); } catch (_) { /* best effort */ }
}
{
  // console.log's formatting and the Writable machinery, through a console of our own that writes nowhere.
  const { Console } = require('console');
  const { Writable } = require('stream');
  const sink = new Writable({ write(chunk, encoding, callback) { callback(); } });
  const console = new Console({ stdout: sink, stderr: sink });
  console.log(1);
  console.log('%s %d %j', 'a', 2, { b: [3, 'c'] }, [4.5], null, undefined, true, 6n);
  console.error(new Error('warm-up'));
  // What happens to the payload below, on a payload of our own.
  const sample = Buffer.from('{"files":[{"path":"/tmp/a.js","len":1,"mode":420}],"args":[]}\nx');
  const cut = sample.indexOf(10);
  JSON.parse(sample.subarray(0, cut).toString('utf8'));
  fs.closeSync(fs.openSync('/dev/null', 'r'));
  // The CommonJS loader, the way runMain will use it: a throwaway module is resolved, read, compiled and run,
  // then forgotten (module cache, path cache, file).
  const warm = '/tmp/.execd-warm.js';
  fs.mkdirSync(path.dirname(warm), { recursive: true });
  const source = Buffer.from("'use strict';\nmodule.exports = [1, 'a'].map(String).join();\n");
  fs.writeFileSync(warm, source.subarray(0, source.length), { mode: 0o644, flag: 'wx' });
  require(warm);
  delete require.cache[warm];
  for (const key of Object.keys(Module._pathCache)) if (key.startsWith(warm)) delete Module._pathCache[key];
  fs.unlinkSync(warm);
}

// Exit without node's teardown when nothing can tell the difference. At the natural end (the event loop ran dry),
// node emits 'beforeExit', then 'exit', then frees its environment, heap and platform before exit(2): ≈ 0.5 ms of
// CPU, all before execd sees the run end. When this listener is the only 'beforeExit' listener (nothing can start
// new work), there is no 'exit' listener (nothing runs during 'exit', not even a microtask), and the program left
// process.emit and process.reallyExit alone, what remains is exactly process.reallyExit with the code node would
// use. Any other case (listeners, process.exit(), an uncaught exception) takes node's own path.
// On this path the run also ends before node's exit: stdout and stderr are blocking (everything written is in the
// pipes), so the worker closes them (and the side channel) and says DONE on fd 4; execd then has the output and the
// status and answers while the kernel still tears node down (≈ 2 ms: exit(2), node's address space, the reaper).
let sideChannel = true;
{
  const emit = process.emit;
  const reallyExit = process.reallyExit;
  process.on('beforeExit', () => {
    if (process.listenerCount('beforeExit') === 1 && process.listenerCount('exit') === 0 &&
        process.emit === emit && process.reallyExit === reallyExit) {
      const code = process.exitCode ?? 0;
      if (Number.isInteger(code)) {
        try {
          fs.closeSync(1);
          fs.closeSync(2);
          if (sideChannel) fs.closeSync(3);
          fs.writeSync(4, `DONE ${(code & 0xff) << 8}`);
        } catch (_) { /* the run then ends when node has exited */ }
      }
      Reflect.apply(reallyExit, process, [code]);
    }
  });
}

fs.writeSync(3, 'R');
const payload = fs.readFileSync(4);
const newline = payload.indexOf(10);
const header = JSON.parse(payload.subarray(0, newline).toString('utf8'));
let offset = newline + 1;
for (const file of header.files) {
  fs.mkdirSync(path.dirname(file.path), { recursive: true });
  fs.writeFileSync(file.path, payload.subarray(offset, offset + file.len), { mode: file.mode, flag: 'wx' });
  offset += file.len;
}
if (!header.side) fs.closeSync(3);  // as in a one-shot sandbox: no fd 3 unless the run asked for one
sideChannel = Boolean(header.side);
process.argv = [process.argv[0], '/tmp/main.js', ...header.args];
Module.runMain();  // /tmp/main.js as the main module, exactly as `node /tmp/main.js` would run it
