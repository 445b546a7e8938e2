def similar(a, b):
    return tuple(sorted(set(a) & set(b)))
