// Quick start (placeholder until the local provider lands): prints the runbox version.
#include <runbox/runbox.hpp>

#include <cstdio>
#include <string>

int main() {
    std::printf("runbox %s\n", std::string(runbox::version_string).c_str());
    return 0;
}
