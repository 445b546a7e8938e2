function groupAnagrams(strs) { return [strs]; }
