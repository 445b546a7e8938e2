import sys
def main():
    a, b = map(int, open(0).read().split())
    sys.stdout.write(f"{a + b}   \r\n")
if __name__ == "__main__":
    main()
