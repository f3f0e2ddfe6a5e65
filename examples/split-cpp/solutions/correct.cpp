// Correct: 1 and n - 1 are both positive for every n >= 2. n may have 30 digits, so n - 1
// is computed on the decimal string.
#include <iostream>
#include <string>

int main() {
    std::string n;
    std::cin >> n;
    size_t i = n.size();
    while (i-- > 0) {
        if (n[i] != '0') {
            n[i]--;
            break;
        }
        n[i] = '9';
    }
    if (n.size() > 1 && n[0] == '0') n.erase(0, 1);
    std::cout << 1 << " " << n << "\n";
    return 0;
}
