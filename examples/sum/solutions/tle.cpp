// Too slow: adds b one step at a time (fine for small b, never ends for b = 10^18).
#include <cstdio>
#include <iostream>
#include <string>

int main() {
    std::string a, b;
    std::cin >> a >> b;
    if (a.find('.') != std::string::npos || b.find('.') != std::string::npos) {
        std::printf("%.9f\n", std::stod(a) + std::stod(b));
        return 0;
    }
    volatile long long sum = std::stoll(a);
    long long n = std::stoll(b);
    for (long long i = 0; i < n; i++) sum = sum + 1;
    for (long long i = 0; i > n; i--) sum = sum - 1;
    std::cout << sum << "\n";
    return 0;
}
