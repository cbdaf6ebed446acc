// A consumer program: it includes the umbrella header the way users do.
#include <runbox/runbox.hpp>

#include <cstdio>
#include <string>

int main() {
    const runbox::error e(runbox::errc::not_found, "no such sandbox", "consumer", 404);
    const std::string what = e.what();
    if (what.find("not_found") == std::string::npos) return 1;
    std::printf("runbox %s: consumer ok\n", std::string(runbox::version_string).c_str());
    return 0;
}
