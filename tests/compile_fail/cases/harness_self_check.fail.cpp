// expect: runbox: compile-fail harness self-check
// The harness's own check: a static_assert whose text the harness must find in the compiler
// output. If this case "passes" while the message is absent, the harness is broken.
#include <type_traits>

template <class T>
struct harness_probe {
    static_assert(std::is_integral_v<T>, "runbox: compile-fail harness self-check");
};

template struct harness_probe<double>;
