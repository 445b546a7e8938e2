# execd test runner for Python submissions (runs inside the sandbox as /tmp/main.py).
#
# Reads judge/config.json and judge/solution.py next to this file, compiles the submission once, runs
# tests config["start"]..config["end"]-1 and reports each as framed JSON records on fd 3 (moved to a
# random close-on-exec fd first). It never sees expected values: it reports what the program produced
# and the trusted side (Swift) compares. Protocol and value encoding: docs/harness.md.
import sys

# The runner's functions resolve builtins through this private copy, so a submission that monkeypatches
# the builtins module (isinstance, len, ...) cannot change how results are encoded or framed.
__builtins__ = dict(__import__("builtins").__dict__)


def _judge():
    import base64, builtins, errno, fcntl, io, json, linecache, math, os, resource, time
    import traceback, types, difflib, ast

    here = os.path.dirname(os.path.abspath(__file__))
    jdir = os.path.join(here, "judge")
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    with open(os.path.join(jdir, "config.json"), "rb") as f:
        config = json.loads(f.read())
    os.unlink(os.path.join(jdir, "config.json"))  # hidden inputs and the nonce: not left lying around
    nonce = config.pop("nonce")

    # The result channel: move fd 3 to a random high close-on-exec fd and close 3.
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft if soft > 0 else 64, 1000)
    try:
        # os.urandom, not secrets: secrets loads hashlib and with it OpenSSL's libcrypto (every judged run paid
        # for that; a 64-bit draw's modulo bias over < 1000 fds is nil).
        chan = fcntl.fcntl(3, fcntl.F_DUPFD_CLOEXEC, 10 + int.from_bytes(os.urandom(8), "big") % max(1, top - 20))
        os.close(3)
    except OSError:
        chan = 3
    # Private references: the submission shares this interpreter and may monkeypatch json, builtins, os.
    write, esc, join, _str, _int, _float, _len = (os.write, json.encoder.encode_basestring_ascii, "".join,
                                                 str, int, float, len)
    _isinstance, _dict, _list, _bool, _repr = isinstance, dict, list, bool, float.__repr__
    _items, _to_bytes, _enumerate = dict.items, int.to_bytes, enumerate

    def jdump(v, parts):
        if v is None:
            parts.append("null")
        elif v is True or v is False:
            parts.append("true" if v else "false")
        elif _isinstance(v, _str):
            parts.append(esc(_str.__str__(v)))
        elif _isinstance(v, _int):
            parts.append(_int.__repr__(v))
        elif _isinstance(v, _float):
            parts.append(_repr(v))
        elif _isinstance(v, _list):
            parts.append("[")
            for k, x in _enumerate(v):
                if k:
                    parts.append(",")
                jdump(x, parts)
            parts.append("]")
        else:
            parts.append("{")
            for k, (a, b) in _enumerate(_items(v)):
                if k:
                    parts.append(",")
                parts.append(esc(a))
                parts.append(":")
                jdump(b, parts)
            parts.append("}")

    def emit(rec):
        rec["n"] = nonce
        parts = []
        jdump(rec, parts)
        body = join(parts).encode("utf-8", "surrogatepass")
        data = _to_bytes(_len(body), 4, "big") + body
        while data:
            data = data[write(chan, data):]

    class OutputLimit(BaseException):
        pass

    SOLUTION, TESTS = "solution.py", "tests.py"
    STUDENT_FILES = {SOLUTION, TESTS}

    # ---- errors, student frames only ----
    def describe(e):
        frames = [fr for fr in traceback.extract_tb(e.__traceback__)
                  if fr.filename in STUDENT_FILES or fr.filename.startswith("<test")]
        out = []
        if frames:
            out.append("Traceback (most recent call last):\n")
            out.extend(traceback.format_list(frames))
        out.extend(traceback.format_exception_only(type(e), e))
        line = frames[-1].lineno if frames else 0
        return {"type": type(e).__name__, "message": str(e)[:2000], "traceback": "".join(out)[-20000:],
                "line": line or 0}

    # ---- tagged value encoding (see docs/harness.md) ----
    limit = [0]

    def enc(v, depth=0):
        limit[0] += 1
        if limit[0] > 2_000_000 or depth > 500:
            raise ValueError("the returned value is too large or too deeply nested to report")
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            v = int.__index__(v)
            return v if -(2 ** 53) <= v <= 2 ** 53 else {"$int": str(v)}
        if isinstance(v, float):
            v = float.__float__(v)
            if math.isnan(v):
                return {"$float": "nan"}
            if math.isinf(v):
                return {"$float": "inf" if v > 0 else "-inf"}
            return v
        if isinstance(v, str):
            return str.__str__(v)
        if isinstance(v, list):
            return [enc(x, depth + 1) for x in list.__iter__(v)]
        if isinstance(v, tuple):
            return {"$tuple": [enc(x, depth + 1) for x in tuple.__iter__(v)]}
        if isinstance(v, frozenset):
            return {"$frozenset": [enc(x, depth + 1) for x in frozenset.__iter__(v)]}
        if isinstance(v, set):
            return {"$set": [enc(x, depth + 1) for x in set.__iter__(v)]}
        if isinstance(v, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
        if isinstance(v, dict):
            items = list(dict.items(v))
            if all(type(k) is str for k, _ in items):
                obj = {k: enc(x, depth + 1) for k, x in items}
                return {"$dict": obj} if len(obj) == 1 and items[0][0].startswith("$") else obj
            return {"$map": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in items]}
        if isinstance(v, complex):
            return {"$repr": repr(complex(v))}
        r = object.__repr__(v) if depth > 50 else repr(v)
        return {"$repr": str(r)[:1000], "$type": t.__name__}

    def dec(v):
        if isinstance(v, list):
            return [dec(x) for x in v]
        if isinstance(v, dict):
            if len(v) == 1:
                (k, x), = v.items()
                if k == "$tuple":
                    return tuple(dec(y) for y in x)
                if k == "$set":
                    return set(dec(y) for y in x)
                if k == "$frozenset":
                    return frozenset(dec(y) for y in x)
                if k == "$int":
                    return int(x)
                if k == "$float":
                    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0}[x]
                if k == "$bytes":
                    return base64.b64decode(x)
                if k == "$map":
                    return {_hashable(dec(a)): dec(b) for a, b in x}
                if k == "$dict":
                    return {a: dec(b) for a, b in x.items()}
                if k == "$undefined":
                    return None
            return {a: dec(b) for a, b in v.items()}
        return v

    def _hashable(v):
        if isinstance(v, list):
            return tuple(_hashable(x) for x in v)
        if isinstance(v, set):
            return frozenset(v)
        return v

    # ---- "equals anything" guard for script tests (the classic `__eq__` returning True) ----
    class _Sentinel:
        pass

    PLAIN = (type(None), bool, int, float, str, bytes, complex)

    def claims_equal_anything(v, budget):
        budget[0] -= 1
        if budget[0] < 0 or type(v) in PLAIN:
            return False
        if type(v) in (list, tuple, set, frozenset):
            return any(claims_equal_anything(x, budget) for x in v)
        if type(v) is dict:
            return any(claims_equal_anything(x, budget) for x in dict.values(v))
        try:
            s = _Sentinel()
            return bool(v == s) or not bool(v != s)
        except Exception:
            return False

    # ---- compile and load the submission once ----
    with open(os.path.join(jdir, "solution.py"), "rb") as f:
        source = f.read().decode("utf-8", "replace")
    linecache.cache[SOLUTION] = (len(source), None, source.splitlines(True), SOLUTION)
    kind, entry_name = config["kind"], config.get("entry") or ""
    try:
        code = compile(source, SOLUTION, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        details = "".join(traceback.format_exception_only(type(e), e))
        emit({"ev": "compile_error", "line": getattr(e, "lineno", 0) or 0, "column": getattr(e, "offset", 0) or 0,
              "message": getattr(e, "msg", str(e)), "details": details})
        return

    empty = os.path.join(jdir, "empty")
    open(empty, "wb").close()
    out_path, err_path = os.path.join(jdir, "out"), os.path.join(jdir, "err")
    out_cap = int(config.get("output_bytes") or 8 << 20)
    err_cap = 64 << 10

    class Capped(io.RawIOBase):
        def __init__(self, fd, cap):
            self.fd, self.cap, self.n, self.over = fd, cap, 0, False

        def writable(self):
            return True

        def fileno(self):
            return self.fd

        def write(self, b):
            if self.n + len(b) > self.cap:
                self.over = True
                raise OutputLimit()
            self.n += len(b)
            return os.write(self.fd, b)

    def redirect(stdin_path):
        """Points fds 0/1/2 (and sys.std*) at this test's files; fd-level so os.write(1) is captured too."""
        for fd, path, flags in ((0, stdin_path, os.O_RDONLY),
                                (1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            nfd = os.open(path, flags, 0o600)
            if nfd != fd:  # fd itself may be free (the submission closed it): then nfd is already it
                os.dup2(nfd, fd)
                os.close(nfd)
        out, err = Capped(1, out_cap), Capped(2, err_cap * 16)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(out), encoding="utf-8", errors="backslashreplace")
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(err), encoding="utf-8", errors="backslashreplace",
                                      line_buffering=True)
        return out

    def collect(out):
        over = out.over
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:
                over = over or s is sys.stdout
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__

        def read(path, cap):
            with open(path, "rb") as f:
                data = f.read(cap + 1)
            return data
        o, e = read(out_path, out_cap), read(err_path, err_cap)
        return o[:out_cap], e[:err_cap], over or len(o) > out_cap

    mod = types.ModuleType("solution")
    mod.__file__ = SOLUTION
    ns = mod.__dict__
    ns["__builtins__"] = builtins
    sys.modules["solution"] = mod
    sys.modules["__main__"] = mod  # the runner's own module is no longer reachable by name
    if sys.getrecursionlimit() < 10000:
        sys.setrecursionlimit(10000)

    tests = config["tests"]
    first = config["start"]

    def load():
        """Runs the module body (function/script kinds); returns True when tests can run."""
        out = redirect(empty)
        err = None
        try:
            exec(code, ns)
        except BaseException as e:  # noqa: B036 — anything the module body raises is the student's
            err = e
        o, e_, over = collect(out)
        if err is not None:
            emit({"ev": "load_error", "error": describe(err) if not isinstance(err, OutputLimit) else
                  {"type": "OutputLimit", "message": "output limit exceeded while loading", "traceback": ""},
                  "stdout": b64(o), "stderr": b64(e_)})
            return False
        return True

    def b64(b):
        return base64.b64encode(b).decode("ascii")

    def resolve():
        """Finds the entry point: name, Class.method, or a method of class Solution."""
        if not entry_name:
            return None, None
        parts = entry_name.split(".")
        if len(parts) == 2 and isinstance(ns.get(parts[0]), type) and hasattr(ns[parts[0]], parts[1]):
            cls, meth = ns[parts[0]], parts[1]
            return (lambda: getattr(cls(), meth)), None
        obj = ns.get(entry_name)
        if obj is not None and callable(obj):
            return (lambda: obj), None
        sol = ns.get("Solution")
        if isinstance(sol, type) and callable(getattr(sol, entry_name, None)):
            return (lambda: getattr(sol(), entry_name)), None
        names = [k for k, v in ns.items() if callable(v) and not k.startswith("__")]
        hint = difflib.get_close_matches(entry_name, names, 1)
        msg = (f"entry point '{entry_name}' is not defined: your code must define a function or class "
               f"named '{entry_name}'" + (f" (found '{hint[0]}')" if hint else ""))
        if obj is not None:
            msg = f"entry point '{entry_name}' is not a function or class (it is a {type(obj).__name__})"
        return None, msg

    def call(target, t):
        args = dec(t.get("args", []))
        if t.get("design"):
            names, arglists = args
            obj = target(*arglists[0])
            results = [None]
            for name, a in zip(names[1:], arglists[1:]):
                results.append(getattr(obj, name)(*a))
            return results
        r = target(*args)
        if hasattr(r, "__await__") and type(r).__name__ == "coroutine":
            import asyncio
            r = asyncio.run(r)
        return r

    def run_test(i, t, get_target, check_mode):
        stdin_path = os.path.join(jdir, "stdin", str(i)) if kind == "stdio" else empty
        rec = {"ev": "end", "i": i, "status": "ok"}
        emit({"ev": "start", "i": i})
        out = redirect(stdin_path)
        t0 = time.perf_counter()
        try:
            if kind == "stdio":
                main = types.ModuleType("__main__")
                main.__dict__["__builtins__"] = builtins
                main.__file__ = SOLUTION
                sys.modules["__main__"] = main
                try:
                    exec(code, main.__dict__)
                except SystemExit as e:
                    if e.code not in (None, 0):
                        raise
            elif kind == "function":
                target = get_target()
                value = call(target, t)
                limit[0] = 0
                rec["value"] = enc(value)
            else:
                snippet = t.get("code") or ""
                if check_mode == "test_code":
                    exec(compile(config.get("test_code", ""), TESTS, "exec", dont_inherit=True), ns)
                    if "check" in ns and ns.get("check") is not check_before and not calls_check:
                        snippet = "check(candidate)"
                elif not snippet:
                    snippet = "check(candidate)"
                if snippet:
                    name = f"<test {i}>"
                    linecache.cache[name] = (len(snippet), None, snippet.splitlines(True), name)
                    exec(compile(snippet, name, "exec", dont_inherit=True), ns)
                if forged[0]:
                    raise AssertionError("the submission returned an object that claims to equal anything "
                                         "(an __eq__ that always returns True); return plain values")
        except OutputLimit:
            rec["status"] = "output_limit"
        except MemoryError:
            rec["status"] = "memory_limit"
        except SystemExit as e:
            rec["status"] = "error"
            rec["error"] = {"type": "SystemExit", "message": f"the program called exit({e.code!r})",
                            "traceback": f"SystemExit: {e.code!r}\n", "line": 0}
        except BaseException as e:  # noqa: B036
            rec["status"] = "error"
            rec["error"] = describe(e)
        rec["time_us"] = int((time.perf_counter() - t0) * 1e6)
        forged[0] = False
        o, e_, over = collect(out)
        if over:
            rec["status"] = "output_limit"
            rec.pop("value", None)
        rec["stdout"], rec["stderr"] = b64(o), b64(e_)
        emit(rec)

    forged = [False]
    check_before = None
    calls_check = False
    get_target = None
    if kind != "stdio":
        if not load():
            return
        get_target, missing = resolve()
        if missing and (kind == "function" or entry_name):
            emit({"ev": "missing_entry", "message": missing})
            return
        if kind == "script":
            if get_target is not None:
                raw = get_target

                def candidate(*a, **k):
                    r = raw()(*a, **k)
                    if claims_equal_anything(r, [10000]):
                        forged[0] = True
                    return r
                ns["candidate"] = candidate
            check_before = ns.get("check")
            tc = config.get("test_code") or ""
            try:
                tree = ast.parse(tc, TESTS)
            except SyntaxError as e:
                emit({"ev": "spec_error", "message": f"test_code does not compile: {e}"})
                return
            calls_check = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                              and isinstance(n.value.func, ast.Name) and n.value.func.id == "check"
                              for n in tree.body)
            linecache.cache[TESTS] = (len(tc), None, tc.splitlines(True), TESTS)
            if tc and not config.get("implicit"):
                out = redirect(empty)
                try:
                    exec(compile(tc, TESTS, "exec", dont_inherit=True), ns)
                    err = None
                except BaseException as e:  # noqa: B036
                    err = e
                collect(out)
                if err is not None:
                    emit({"ev": "spec_error", "message": "test_code raised while loading:\n" + describe(err)["traceback"]})
                    return
    mode = "test_code" if config.get("implicit") else "snippet"
    for k in range(first, config["end"]):
        run_test(k, tests[k - first], get_target, mode)
    emit({"ev": "done"})
    os._exit(0)  # don't wait for the submission's threads or atexit handlers


_judge()
