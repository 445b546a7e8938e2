def mean(xs):
    if len(xs) == 1: raise ValueError("boom")
    return sum(xs) / len(xs)
