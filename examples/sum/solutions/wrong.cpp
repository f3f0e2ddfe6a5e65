// Wrong: 32-bit ints overflow and decimals are truncated.
#include <iostream>

int main() {
    int a, b;
    std::cin >> a >> b;
    std::cout << a + b << "\n";
    return 0;
}
