print("snapfs")
