import math
r = float(input())
print("%.6f" % (math.pi * r * r), "Yes" if r > 0 else "No")
