// runbox::compiled: the library's definitions compiled once (RUNBOX_SEPARATE_COMPILATION).
#include <runbox/src.hpp>
