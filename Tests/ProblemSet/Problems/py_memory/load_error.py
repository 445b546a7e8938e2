import does_not_exist_module
def build(n):
    return n
