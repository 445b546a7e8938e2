import sys, os
data = sys.stdin.buffer.read().split()
os.write(1, str(int(data[0]) + int(data[1])).encode() + b"\n")
