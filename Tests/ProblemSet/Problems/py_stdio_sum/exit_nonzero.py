import sys
a, b = map(int, input().split())
if a < 0: sys.exit(3)
print(a + b)
