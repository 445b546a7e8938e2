def describe(kind):
    return {
        "tuple": (1, "b"), "set": [1, 2], "nan": 0.0, "inf": float("inf"), "none": 0,
        "bytes": "hi", "intkeys": {1: "one"}, "float_int": 2.5, "nested": [(1, 2), frozenset({"y"})],
    }[kind]
