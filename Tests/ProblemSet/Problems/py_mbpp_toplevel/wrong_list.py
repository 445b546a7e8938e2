def similar_elements(a, b):
    return sorted(set(a) & set(b))
