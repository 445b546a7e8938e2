function hasCloseElements(numbers, threshold) { return true; }
