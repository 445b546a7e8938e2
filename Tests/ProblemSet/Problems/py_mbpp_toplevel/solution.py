def similar_elements(a, b):
    return tuple(sorted(set(a) & set(b)))
