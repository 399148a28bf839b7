/* leak-test: C++ runtime use (iostream, exceptions, thread_local, std::thread, static containers) reports nothing
 * expect: none
 * exit: 0
 */
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

/* Static objects are destroyed after main; blocks they still hold when the
 * checker reports are reachable from them. */
static std::map<std::string, std::vector<int>> registry;

int main()
{
    registry["a"] = {1, 2, 3};
    auto shared = std::make_shared<std::string>(100, 'q');
    try {
        throw std::runtime_error("expected");
    } catch (const std::exception &e) {
        std::cout << e.what() << "\n";
    }
    std::thread t([shared] {
        thread_local std::string local(200, 'x');
        std::cout << local.size() + shared->size() << "\n";
    });
    t.join();
    std::unique_ptr<int[]> arr(new int[64]());
    std::cout << registry.size() << " " << arr[0] << std::endl;
    return 0;
}
