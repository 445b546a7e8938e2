// execd's pre-started JavaScript worker: node, already started inside a fully locked-down one-shot sandbox
// (every privilege dropped and seccomp installed before node was exec'd), waiting for its one program.
//
// fd 3: the run's side channel (the judge's result records); this worker first writes "R" there when warm.
// fd 4: the payload, written by execd once and closed: a JSON header line, then the files' bytes back to back.
'use strict';
const fs = require('fs');
const path = require('path');

fs.unlinkSync(__filename);  // the run's /tmp holds only what the run was given
fs.writeSync(3, 'R');
const payload = fs.readFileSync(4);
fs.closeSync(4);
const newline = payload.indexOf(10);
const header = JSON.parse(payload.subarray(0, newline).toString('utf8'));
let offset = newline + 1;
for (const file of header.files) {
  fs.mkdirSync(path.dirname(file.path), { recursive: true });
  fs.writeFileSync(file.path, payload.subarray(offset, offset + file.len), { mode: file.mode, flag: 'wx' });
  offset += file.len;
}
if (!header.side) fs.closeSync(3);  // as in a one-shot sandbox: no fd 3 unless the run asked for one
// Blocking stdout/stderr, as for a one-shot run (stdio.js's reasons).
for (const stream of [process.stdout, process.stderr]) {
  try { if (stream._handle && stream._handle.setBlocking) stream._handle.setBlocking(true); } catch (_) { /* best effort */ }
}
process.argv = [process.argv[0], '/tmp/main.js', ...header.args];
require('module').runMain();  // /tmp/main.js as the main module, exactly as `node /tmp/main.js` would run it
