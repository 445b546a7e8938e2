class Solution:
    def dist(self, a, b):
        print("5.0")
        return abs(a[0] - b[0]) + abs(a[1] - b[1])
