class Solution:
    def groupAnagrams(self, strs):
        return [[s] for s in strs]
