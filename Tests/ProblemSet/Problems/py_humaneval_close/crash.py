def has_close_elements(numbers, threshold):
    return numbers[100] < threshold
