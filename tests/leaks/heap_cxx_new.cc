/* leak-test: C++ new and new[] leaks through libstdc++'s operator new (no frame pointers)
 * expect: heap 1 leak_object class=definitely bytes=40
 * expect: heap 1 leak_array class=definitely bytes=400
 * exit: 0
 */
#include <cstdio>
#include <string>
#include <vector>

struct widget {
    long id;
    double weight[4];
};

static widget *volatile sink_object;
static int *volatile sink_array;

/* extern "C": plain names in the report whatever the symbolizer does
 * about C++ mangling. */
extern "C" __attribute__((noinline)) void leak_object()
{
    sink_object = new widget{7, {1, 2, 3, 4}};
    sink_object = nullptr;
}

extern "C" __attribute__((noinline)) void leak_array()
{
    sink_array = new int[100]();
    sink_array = nullptr;
}

/* Not leaks: standard containers that release everything. */
static __attribute__((noinline)) size_t use_containers()
{
    std::vector<std::string> v;
    for (int i = 0; i < 50; i++)
        v.push_back(std::string(40, static_cast<char>('a' + i % 26)));
    return v.size();
}

int main()
{
    leak_object();
    leak_array();
    std::printf("%zu\n", use_containers());
    return 0;
}
