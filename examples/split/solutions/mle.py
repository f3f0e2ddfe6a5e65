# Memory hog: keeps every split it tries.
n = int(input())
seen = []
while True:
    seen.append(bytearray(16 << 20))
