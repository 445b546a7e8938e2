r = float(input())
print(round(3.14 * r * r, 2), "YES" if r > 0 else "NO")
