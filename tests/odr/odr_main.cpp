#include <cstdio>
#include <string>

std::string odr_a();
std::string odr_b();

int main() {
    const std::string a = odr_a();
    const std::string b = odr_b();
    std::printf("%s %s\n", a.c_str(), b.c_str());
    return (a.find("timeout") != std::string::npos && b == "rate_limited") ? 0 : 1;
}
