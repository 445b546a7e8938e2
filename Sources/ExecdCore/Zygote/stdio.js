// Loaded before every JavaScript program (node --require) and by the pre-started worker: stdout and stderr become
// blocking pipes. Node otherwise may make them non-blocking, and a program that floods them from a loop that never
// yields then queues its output in memory until the memory limit ends it, instead of hitting the output limit.
'use strict';
try { require('fs').unlinkSync(__filename); } catch (_) { /* the worker loads it from elsewhere */ }
for (const stream of [process.stdout, process.stderr]) {
  try { if (stream._handle && stream._handle.setBlocking) stream._handle.setBlocking(true); } catch (_) { /* best effort */ }
}
