function hasCloseElements(numbers, threshold) { return numbers.foo.bar; }
