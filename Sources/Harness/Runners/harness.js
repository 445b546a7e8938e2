// execd test runner for JavaScript submissions (runs inside the sandbox as /tmp/main.js).
//
// Reads judge/config.json and judge/solution.js next to this file, compiles the submission once (as a
// classic script in this realm, so its top-level declarations are visible to test code and to entry
// lookup), runs tests config.start..config.end-1 and reports each as framed JSON records on the result
// channel (fd 3, reopened under another number when /proc allows, then closed). It never sees expected
// values. Protocol and value encoding: docs/harness.md.
'use strict';
(function judge() {
  const fs = require('fs');
  const vm = require('vm');
  const path = require('path');
  const assertModule = require('assert');
  // Private references: the submission shares this realm and may monkeypatch globals.
  const { writeSync, readFileSync, openSync, closeSync, unlinkSync } = fs;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const BufferFrom = Buffer.from;
  const BufferAlloc = Buffer.alloc;
  const BufferConcat = Buffer.concat;
  const hrtime = process.hrtime.bigint;
  const isArray = Array.isArray;
  const ObjectKeys = Object.keys;
  const fnToString = Function.prototype.toString;
  const reflectApply = Reflect.apply;

  const dir = path.join(__dirname, 'judge');
  const config = parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  unlinkSync(path.join(dir, 'config.json'));
  const nonce = config.nonce;
  delete config.nonce;

  let chan = 3;
  try {
    const fd = openSync('/proc/self/fd/3', fs.constants.O_WRONLY);
    closeSync(3);
    chan = fd;
  } catch (_) { /* no /proc: keep fd 3 */ }

  function emit(rec) {
    rec.n = nonce;
    const body = BufferFrom(stringify(rec), 'utf8');
    const head = BufferAlloc(4);
    head.writeUInt32BE(body.length, 0);
    let data = BufferConcat([head, body]);
    while (data.length > 0) {
      try {
        const n = writeSync(chan, data);
        data = data.subarray(n);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
  }

  const SOLUTION = 'solution.js';
  const TESTS = 'tests.js';

  // ---- errors, student frames only ----
  function describe(e) {
    if (!(e instanceof Error) && !(e && typeof e === 'object' && typeof e.stack === 'string')) {
      let text;
      try { text = String(e); } catch (_) { text = Object.prototype.toString.call(e); }
      return { type: 'Uncaught', message: text, traceback: 'Uncaught ' + text + '\n', line: 0 };
    }
    let stack = '';
    try { stack = String(e.stack || ''); } catch (_) { /* hostile getter */ }
    const lines = stack.split('\n');
    const head = [];
    const frames = [];
    for (const l of lines) {
      if (/^\s+at /.test(l)) {
        if (l.includes(SOLUTION) || l.includes(TESTS) || l.includes('<test ')) frames.push(l);
      } else if (frames.length === 0) {
        head.push(l);
      }
    }
    const m = /(?:solution|tests)\.js:(\d+)/.exec(frames[0] || '');
    let name = 'Error';
    let message = '';
    try { name = String(e.name); message = String(e.message); } catch (_) { /* ignore */ }
    const text = (head.join('\n') + '\n' + frames.join('\n')).trim() + '\n';
    return { type: name, message: message.slice(0, 2000), traceback: text.slice(-20000), line: m ? +m[1] : 0 };
  }

  // ---- tagged value encoding (see docs/harness.md) ----
  let budget = 0;
  function enc(v, depth, seen) {
    if (++budget > 2000000 || depth > 500) throw new RangeError('the returned value is too large or too deeply nested to report');
    switch (typeof v) {
      case 'undefined': return { $undefined: true };
      case 'boolean': case 'string': return v;
      case 'number':
        if (Number.isNaN(v)) return { $float: 'nan' };
        if (v === Infinity) return { $float: 'inf' };
        if (v === -Infinity) return { $float: '-inf' };
        if (v === 0 && 1 / v < 0) return { $float: '-0' };
        return v;
      case 'bigint': return { $int: v.toString() };
      case 'symbol': return { $repr: v.toString() };
      case 'function': return { $repr: '[Function ' + (v.name || 'anonymous') + ']' };
      default: break;
    }
    if (v === null) return null;
    if (seen.has(v)) return { $repr: '[Circular]' };
    seen.add(v);
    try {
      if (isArray(v)) {
        const out = [];
        for (let k = 0; k < v.length; k++) out.push(k in v ? enc(v[k], depth + 1, seen) : { $undefined: true });
        return out;
      }
      if (v instanceof Map) {
        const out = [];
        for (const [a, b] of Map.prototype.entries.call(v)) out.push([enc(a, depth + 1, seen), enc(b, depth + 1, seen)]);
        return { $map: out };
      }
      if (v instanceof Set) {
        const out = [];
        for (const a of Set.prototype.values.call(v)) out.push(enc(a, depth + 1, seen));
        return { $set: out };
      }
      if (v instanceof Uint8Array) return { $bytes: BufferFrom(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
      if (ArrayBuffer.isView(v)) return Array.from(v, (x) => enc(x, depth + 1, seen));
      if (v instanceof Date) return { $repr: v.toISOString() };
      if (v instanceof Error) return { $repr: String(v) };
      const out = {};
      const keys = ObjectKeys(v);
      for (const k of keys) out[k] = enc(v[k], depth + 1, seen);
      return keys.length === 1 && keys[0].startsWith('$') ? { $dict: out } : out;
    } finally {
      seen.delete(v);
    }
  }

  function dec(v) {
    if (isArray(v)) return v.map(dec);
    if (v !== null && typeof v === 'object') {
      const keys = ObjectKeys(v);
      if (keys.length === 1) {
        const x = v[keys[0]];
        switch (keys[0]) {
          case '$tuple': return x.map(dec);
          case '$set': case '$frozenset': return new Set(x.map(dec));
          case '$int': return BigInt(x);
          case '$float': return { nan: NaN, inf: Infinity, '-inf': -Infinity, '-0': -0 }[x];
          case '$bytes': return BufferFrom(x, 'base64');
          case '$map': return new Map(x.map(([a, b]) => [dec(a), dec(b)]));
          case '$undefined': return undefined;
          case '$dict': { const o = {}; for (const k of ObjectKeys(x)) o[k] = dec(x[k]); return o; }
          default: break;
        }
      }
      const o = {};
      for (const k of keys) o[k] = dec(v[k]);
      return o;
    }
    return v;
  }

  // ---- compile the submission once ----
  const source = readFileSync(path.join(dir, SOLUTION), 'utf8');
  let script;
  try {
    script = new vm.Script(source, { filename: SOLUTION });
  } catch (e) {
    const stack = String(e.stack || '');
    const m = /^solution\.js:(\d+)\n([^\n]*)\n(\s*)\^/.exec(stack);
    const cut = stack.indexOf('\n    at ');
    emit({ ev: 'compile_error', line: m ? +m[1] : 0, column: m ? m[3].length + 1 : 0,
      message: String(e.message), details: (cut >= 0 ? stack.slice(0, cut) : stack).trim() + '\n' });
    return;
  }

  // Test code must see assertion failures even from console.assert, and must get an `assert` the
  // submission cannot stub out.
  let inScriptTest = false;
  const originalConsoleAssert = console.assert;
  function consoleAssert(cond, ...rest) {
    if (cond) return;
    if (inScriptTest) {
      const err = new assertModule.AssertionError({ message: rest.length ? rest.map(String).join(' ') : 'console.assert failed' });
      Error.captureStackTrace(err, consoleAssert);
      throw err;
    }
    reflectApply(originalConsoleAssert, console, [cond, ...rest]);
  }
  Object.defineProperty(console, 'assert', { value: consoleAssert, writable: false, configurable: false });
  Object.freeze(assertModule.strict);
  Object.freeze(assertModule);
  Error.stackTraceLimit = 50;

  const kind = config.kind;
  const entry = config.entry || '';
  const outCap = config.output_bytes || 8 << 20;
  const errCap = 64 << 10;

  // CommonJS-ish globals for the submission (it runs as a script, not inside the module wrapper).
  const studentModule = { exports: {} };
  globalThis.module = studentModule;
  globalThis.exports = studentModule.exports;
  globalThis.require = require;
  globalThis.__filename = path.join(__dirname, SOLUTION);
  globalThis.__dirname = __dirname;

  // ---- stdio tests: one run per test, real stdin/stdout; the exit event ends the test ----
  if (kind === 'stdio') {
    const i = config.start;
    let ended = false;
    let t0 = hrtime();
    const finish = (status, error) => {
      if (ended) return;
      ended = true;
      const rec = { ev: 'end', i, status, time_us: Number((hrtime() - t0) / 1000n) };
      if (error) rec.error = error;
      emit(rec);
    };
    process.on('uncaughtException', (e) => { finish('error', describe(e)); process.exit(1); });
    process.on('unhandledRejection', (e) => { finish('error', describe(e)); process.exit(1); });
    process.on('exit', (code) => {
      if (code) finish('error', { type: 'Exit', message: 'the program exited with code ' + code, traceback: '', line: 0 });
      else finish('ok');
      if (!ended) return;
      emit({ ev: 'done' });
    });
    emit({ ev: 'start', i });
    t0 = hrtime();
    script.runInThisContext();
    return;
  }

  // ---- function and script tests: one process, per-test captured stdout/stderr ----
  const realOut = process.stdout.write;
  const realErr = process.stderr.write;
  let cap = null;
  function capture(which, limit) {
    return function write(chunk, encoding, cb) {
      const buf = typeof chunk === 'string' ? BufferFrom(chunk, typeof encoding === 'string' ? encoding : 'utf8') : BufferFrom(chunk);
      const c = cap;
      if (c) {
        if (c[which + 'Len'] + buf.length > limit) {
          if (which === 'out') c.over = true;
          if (which === 'out') throw new RangeError('output limit exceeded');
        } else {
          c[which].push(buf);
          c[which + 'Len'] += buf.length;
        }
      }
      if (typeof encoding === 'function') encoding(); else if (typeof cb === 'function') cb();
      return true;
    };
  }
  process.stdout.write = capture('out', outCap);
  process.stderr.write = capture('err', errCap);

  let current = null;   // the test in progress, for errors raised outside its call stack
  process.on('uncaughtException', (e) => { if (current) current.reject(e); });
  process.on('unhandledRejection', (e) => { if (current) current.reject(e); });

  function lookup(name) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) return undefined;
    try {
      return vm.runInThisContext('typeof ' + name + ' === "undefined" ? undefined : ' + name);
    } catch (_) {
      return undefined;
    }
  }

  function resolve() {
    if (!entry) return [null, null];
    const parts = entry.split('.');
    if (parts.length === 2) {
      const C = lookup(parts[0]);
      if (typeof C === 'function' && C.prototype && typeof C.prototype[parts[1]] === 'function') {
        return [() => { const o = new C(); return o[parts[1]].bind(o); }, null];
      }
    }
    let f = lookup(entry);
    const ex = studentModule.exports;
    if (f === undefined && ex) {
      if (typeof ex[entry] === 'function') f = ex[entry];
      else if (typeof ex === 'function' && ex.name === entry) f = ex;
    }
    if (typeof f === 'function') return [() => f, null];
    const Sol = lookup('Solution');
    if (typeof Sol === 'function' && Sol.prototype && typeof Sol.prototype[entry] === 'function') {
      return [() => { const o = new Sol(); return o[entry].bind(o); }, null];
    }
    if (f !== undefined) return [null, "entry point '" + entry + "' is not a function or class (it is " + typeof f + ')'];
    return [null, "entry point '" + entry + "' is not defined: your code must define a function or class named '" + entry + "'"];
  }

  function isClass(f) {
    try { return /^class[\s{]/.test(reflectApply(fnToString, f, [])); } catch (_) { return false; }
  }

  async function call(getTarget, t) {
    const args = dec(t.args || []);
    if (t.design) {
      const C = getTarget();
      const [names, arglists] = args;
      const obj = new C(...(arglists[0] || []));
      const results = [null];
      for (let k = 1; k < names.length; k++) {
        const r = obj[names[k]](...(arglists[k] || []));
        results.push(r === undefined ? null : r);
      }
      return results;
    }
    const f = getTarget();
    if (isClass(f)) throw new TypeError("entry point '" + entry + "' is a class; design tests need args [[names], [args]]");
    let r = f(...args);
    if (r && typeof r.then === 'function') r = await r;
    return r;
  }

  function runIn(code, filename) {
    return vm.runInThisContext(code, { filename });
  }

  // Test code runs as a script in the submission's scope. When both declare the same top-level
  // let/const (typically `const assert = require('assert')`), run the test code in a function scope
  // instead and publish its `check`.
  function runTestCode(code) {
    try {
      return runIn(code, TESTS);
    } catch (e) {
      if (!(e instanceof SyntaxError) || !/has already been declared/.test(String(e.message))) throw e;
      return runIn('(function () {' + code + '\n;if (typeof check === "function") globalThis.check = check;\n})()', TESTS);
    }
  }

  async function runTest(i, t, getTarget, implicit) {
    const rec = { ev: 'end', i, status: 'ok' };
    cap = { out: [], outLen: 0, err: [], errLen: 0, over: false };
    let rejectOutside;
    const outside = new Promise((_, reject) => { rejectOutside = reject; });
    outside.catch(() => {});
    current = { reject: rejectOutside };
    const keepAlive = setInterval(() => {}, 1 << 30);  // a never-settling promise waits for the kill, not exit
    emit({ ev: 'start', i });
    const t0 = hrtime();
    try {
      if (kind === 'function') {
        const value = await Promise.race([call(getTarget, t), outside]);
        budget = 0;
        rec.value = enc(value, 0, new Set());
      } else {
        inScriptTest = true;
        let snippet = t.code || '';
        if (implicit) {
          const before = lookup('check');
          runTestCode(config.test_code || '');
          const after = lookup('check');
          if (typeof after === 'function' && after !== before && !/^\s*check\s*\(/m.test(config.test_code || '')) {
            snippet = 'check(candidate)';
          }
        } else if (!snippet) {
          snippet = 'check(candidate)';
        }
        if (snippet) {
          let r = runIn('{\n' + snippet + '\n}', '<test ' + i + '>');
          if (r && typeof r.then === 'function') r = await Promise.race([r, outside]);
        }
      }
    } catch (e) {
      if (e instanceof RangeError && /Maximum call stack/.test(String(e.message))) {
        rec.status = 'error';
        rec.error = describe(e);
      } else {
        rec.status = 'error';
        rec.error = describe(e);
      }
    } finally {
      inScriptTest = false;
      clearInterval(keepAlive);
    }
    rec.time_us = Number((hrtime() - t0) / 1000n);
    const c = cap;
    cap = null;
    current = null;
    if (c.over) { rec.status = 'output_limit'; delete rec.value; delete rec.error; }
    rec.stdout = BufferConcat(c.out).toString('base64');
    rec.stderr = BufferConcat(c.err).toString('base64');
    emit(rec);
  }

  async function main() {
    cap = { out: [], outLen: 0, err: [], errLen: 0, over: false };
    try {
      script.runInThisContext();
    } catch (e) {
      const c = cap;
      cap = null;
      emit({ ev: 'load_error', error: describe(e), stdout: BufferConcat(c.out).toString('base64'),
        stderr: BufferConcat(c.err).toString('base64') });
      return;
    }
    cap = null;
    const [getTarget, missing] = resolve();
    if (missing && (kind === 'function' || entry)) {
      emit({ ev: 'missing_entry', message: missing });
      return;
    }
    if (kind === 'script') {
      try {
        new vm.Script(config.test_code || '', { filename: TESTS });
      } catch (e) {
        emit({ ev: 'spec_error', message: 'test_code does not compile: ' + String(e.message) });
        return;
      }
      if (getTarget) globalThis.candidate = getTarget();
      if (config.test_code && !config.implicit) {
        cap = { out: [], outLen: 0, err: [], errLen: 0, over: false };
        try {
          runTestCode(config.test_code);
        } catch (e) {
          cap = null;
          emit({ ev: 'spec_error', message: 'test_code raised while loading:\n' + describe(e).traceback });
          return;
        }
        cap = null;
      }
    }
    for (let k = config.start; k < config.end; k++) {
      await runTest(k, config.tests[k - config.start], getTarget, !!config.implicit);
    }
    emit({ ev: 'done' });
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exit(0);
  }
  main().catch((e) => { emit({ ev: 'spec_error', message: 'runner failure: ' + String(e && e.stack) }); process.exit(2); });
})();
