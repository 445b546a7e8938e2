print("execctl")
