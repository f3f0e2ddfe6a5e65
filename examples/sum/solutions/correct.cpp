// Reads two numbers; integers are added exactly in 64 bits, anything else as a double.
#include <cstdio>
#include <iostream>
#include <string>

static bool is_integer(const std::string& s) {
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == s.size()) return false;
    for (; i < s.size(); i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int main() {
    std::string a, b;
    if (!(std::cin >> a >> b)) return 1;
    if (is_integer(a) && is_integer(b)) {
        std::cout << std::stoll(a) + std::stoll(b) << "\n";
    } else {
        std::printf("%.9f\n", std::stod(a) + std::stod(b));
    }
    return 0;
}
