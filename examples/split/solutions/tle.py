# Too slow: walks a up one step at a time until b = n - a is 1 (never ends for huge n).
n = int(input())
a = 1
while n - a != 1:
    a += 1
print(a, n - a)
