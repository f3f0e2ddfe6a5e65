// Wrong: 0 is not positive.
#include <iostream>

int main() {
    long long n = 0;
    std::cin >> n;
    std::cout << 0 << " " << n << "\n";
    return 0;
}
