import math
def mean(xs):
    return math.fsum(xs) / len(xs) + 1e-9
