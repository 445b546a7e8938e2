def build(n):
    return build(n + 1)
