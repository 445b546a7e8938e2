print("execd")
