// Twin of harness_self_check.fail.cpp: the same probe with a type that satisfies it compiles.
#include <type_traits>

template <class T>
struct harness_probe {
    static_assert(std::is_integral_v<T>, "runbox: compile-fail harness self-check");
};

template struct harness_probe<int>;
