// Wrong: 32-bit ints overflow and decimals are truncated. Both start at 0 so the answer is
// wrong the same way every run: a failed extraction stores INT_MAX/0 (C++11) and leaves the
// next variable unread, never uninitialised.
#include <iostream>

int main() {
    int a = 0, b = 0;
    std::cin >> a >> b;
    std::cout << a + b << "\n";
    return 0;
}
