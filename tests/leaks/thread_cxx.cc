/* leak-test: a std::thread (created inside libstdc++, built without frame pointers) never joined
 * expect: thread 1 start_background state=running
 * exit: 0
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

static std::atomic<bool> started{false};
// Global (not static) so the compiler keeps it: the object stays reachable,
// only the thread leaks.
std::thread *background;

// The planted leak: the thread is neither joined nor detached.
extern "C" __attribute__((noinline)) void start_background()
{
    background = new std::thread([] {
        started = true;
        for (;;)
            pause(); // nothing that exit() would tear down under it
    });
}

__attribute__((noinline)) static void joined_properly()
{
    std::thread t([] {});
    t.join();
    std::thread d([] {});
    d.detach();
}

int main()
{
    joined_properly();
    start_background();
    while (!started)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::printf("started\n");
    // exit() instead of returning: no static destructors that would need the thread.
    std::exit(0);
}
