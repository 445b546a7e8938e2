function isPalindrome(s) { return s.length % 2 === 1; }
