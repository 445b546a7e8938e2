def describe(kind):
    return {
        "tuple": (1, "a"), "set": {1, 2, 3}, "nan": float("nan"), "inf": float("-inf"), "none": None,
        "bytes": b"hi", "intkeys": {2: "two", 1: "one"}, "float_int": 2.0,
        "nested": [(1, 2), frozenset({"x"})],
    }[kind]
